package indexer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/schema"
)

// MaxCountries bounds the countries TopURLs returns (there are fewer than
// 300 ISO 3166 codes).
const MaxCountries = 300

// URLClicks is one URL and its clicks.
type URLClicks struct {
	URL    string `json:"url"`
	Clicks int64  `json:"clicks"`
}

// CountryTop is the most clicked URLs of one country.
type CountryTop struct {
	Country string      `json:"country"`
	Clicks  int64       `json:"clicks"` // all clicks of the country
	URLs    []URLClicks `json:"urls"`   // by clicks, descending, then URL
}

// TopURLsQuery is the search body of TopURLs: documents of window (every
// window if nil), grouped by country (by clicks, descending), with the
// perCountry URLs of most clicks in each. On an index of several shards
// the per-country URL lists are approximate for long tails, as with any
// terms aggregation.
func TopURLsQuery(window *aggregate.Window, perCountry int) []byte {
	perCountry = max(perCountry, 1)
	// Window documents only: roll-up rows would count their clicks again.
	query := map[string]any{"bool": map[string]any{"filter": []any{grainQuery(schema.GrainWindow)}}}
	if window != nil {
		query = windowQuery(*window, schema.GrainWindow)
	}
	sumClicks := map[string]any{"sum": map[string]any{"field": "clicks"}}
	order := []any{map[string]any{"clicks": "desc"}, map[string]any{"_key": "asc"}}
	body := map[string]any{
		"size":  0,
		"query": query,
		"aggs": map[string]any{
			"countries": map[string]any{
				"terms": map[string]any{"field": "country", "size": MaxCountries, "order": order},
				"aggs": map[string]any{
					"clicks": sumClicks,
					"urls": map[string]any{
						"terms": map[string]any{"field": "url", "size": perCountry, "shard_size": max(perCountry*10, 100), "order": order},
						"aggs":  map[string]any{"clicks": sumClicks},
					},
				},
			},
		},
	}
	data, err := json.Marshal(body)
	if err != nil {
		panic(err) // static shape
	}
	return data
}

// TopURLs returns, for each country, the perCountry URLs with the most
// clicks in window (all windows if nil), read through alias.
func TopURLs(ctx context.Context, client *elasticsearch.Client, alias string, window *aggregate.Window, perCountry int) ([]CountryTop, error) {
	body, _, err := call(ctx, client, esapi.SearchRequest{
		Index: []string{alias},
		Body:  strings.NewReader(string(TopURLsQuery(window, perCountry))),
	})
	if err != nil {
		return nil, fmt.Errorf("indexer: top urls: %w", err)
	}
	type sum struct {
		Value float64 `json:"value"`
	}
	var resp struct {
		Aggregations struct {
			Countries struct {
				Buckets []struct {
					Key    string `json:"key"`
					Clicks sum    `json:"clicks"`
					URLs   struct {
						Buckets []struct {
							Key    string `json:"key"`
							Clicks sum    `json:"clicks"`
						} `json:"buckets"`
					} `json:"urls"`
				} `json:"buckets"`
			} `json:"countries"`
		} `json:"aggregations"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("indexer: top urls: decoding the response: %w", err)
	}
	out := make([]CountryTop, 0, len(resp.Aggregations.Countries.Buckets))
	for _, c := range resp.Aggregations.Countries.Buckets {
		ct := CountryTop{Country: c.Key, Clicks: int64(math.Round(c.Clicks.Value))}
		for _, u := range c.URLs.Buckets {
			ct.URLs = append(ct.URLs, URLClicks{URL: u.Key, Clicks: int64(math.Round(u.Clicks.Value))})
		}
		out = append(out, ct)
	}
	return out, nil
}

// TopURLsCurl returns a curl command that runs the TopURLs query against
// esURL (credentials in it are dropped: add -u or an Authorization header
// yourself), for a user to paste into a shell.
func TopURLsCurl(esURL, alias string, window *aggregate.Window, perCountry int) string {
	base := strings.TrimRight(esURL, "/")
	if u, err := url.Parse(base); err == nil {
		u.User = nil
		base = u.String()
	}
	endpoint := base + "/" + url.PathEscape(alias) + "/_search?filter_path=aggregations&pretty"
	return "curl -sS -H 'Content-Type: application/json' " + shellQuote(endpoint) + " -d " + shellQuote(string(TopURLsQuery(window, perCountry)))
}

// shellQuote quotes s for a POSIX shell.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Totals is what the index holds of the windows in a time range.
type Totals struct {
	Documents int64 `json:"documents"`
	Clicks    int64 `json:"clicks"`
	BotClicks int64 `json:"bot_clicks"`
}

// Events is the number of events the documents count: every event of a
// window is one click or one bot click of one document.
func (t Totals) Events() int64 { return t.Clicks + t.BotClicks }

// TotalsQuery is the search body of RangeTotals: the documents whose window
// lies in [from, to), counted exactly, and the sums of their clicks and bot
// clicks (a document indexed before bot_clicks existed adds none).
func TotalsQuery(from, to time.Time) []byte {
	body := map[string]any{
		"size":             0,
		"track_total_hits": true,
		"query": map[string]any{"bool": map[string]any{"filter": []any{
			map[string]any{"range": map[string]any{"window_start": map[string]any{"gte": fmtTime(from)}}},
			map[string]any{"range": map[string]any{"window_end": map[string]any{"lte": fmtTime(to)}}},
		}}},
		"aggs": map[string]any{
			"clicks":     map[string]any{"sum": map[string]any{"field": "clicks"}},
			"bot_clicks": map[string]any{"sum": map[string]any{"field": "bot_clicks"}},
		},
	}
	data, err := json.Marshal(body)
	if err != nil {
		panic(err) // static shape
	}
	return data
}

// RangeTotals counts, through the alias, the documents of the windows in
// [from, to) and sums their clicks. It does not refresh: it sees what
// searches see.
func (ix *Indexer) RangeTotals(ctx context.Context, from, to time.Time) (Totals, error) {
	body, _, err := call(ctx, ix.client, esapi.SearchRequest{
		Index: []string{ix.cfg.Alias},
		Body:  strings.NewReader(string(TotalsQuery(from, to))),
	})
	var se *StatusError
	if errors.As(err, &se) && se.Status == 404 && se.Type == "index_not_found_exception" {
		return Totals{}, fmt.Errorf("indexer: totals of %s: %w", ix.cfg.Alias, ErrNoIndex)
	}
	if err != nil {
		return Totals{}, fmt.Errorf("indexer: totals of %s: %w", ix.cfg.Alias, err)
	}
	t, err := ParseTotals(body)
	if err != nil {
		return Totals{}, fmt.Errorf("indexer: totals of %s: %w", ix.cfg.Alias, err)
	}
	return t, nil
}

// ParseTotals decodes the answer to a search of TotalsQuery.
func ParseTotals(body []byte) (Totals, error) {
	var resp struct {
		Hits struct {
			Total struct {
				Value    int64  `json:"value"`
				Relation string `json:"relation"`
			} `json:"total"`
		} `json:"hits"`
		Aggregations struct {
			Clicks struct {
				Value float64 `json:"value"`
			} `json:"clicks"`
			BotClicks struct {
				Value float64 `json:"value"`
			} `json:"bot_clicks"`
		} `json:"aggregations"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return Totals{}, fmt.Errorf("decoding the response: %w", err)
	}
	if r := resp.Hits.Total.Relation; r != "" && r != "eq" {
		return Totals{}, fmt.Errorf("the hit count is a bound (%s %d), not exact", r, resp.Hits.Total.Value)
	}
	// A sum of longs comes back as a double: exact below 2^53.
	for _, v := range []float64{resp.Aggregations.Clicks.Value, resp.Aggregations.BotClicks.Value} {
		if v < 0 || v >= 1<<53 {
			return Totals{}, fmt.Errorf("click sum %g out of the exact range", v)
		}
	}
	return Totals{Documents: resp.Hits.Total.Value, Clicks: int64(math.Round(resp.Aggregations.Clicks.Value)),
		BotClicks: int64(math.Round(resp.Aggregations.BotClicks.Value))}, nil
}
