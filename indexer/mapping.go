package indexer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8/esapi"

	"github.com/dataco/clickstream/internal/schema"
)

// SchemaVersion is recorded in the mapping's _meta; bump it with any
// mapping change, a change of schema.Columns included (a changed mapping
// needs a Rebuild into a new index).
const SchemaVersion = 2

// mapping is the explicit mapping of a document: the result fields of
// schema.Columns, each with its type, and the indexer's own. It is strict:
// a document with a field not listed here is rejected instead of silently
// mapped.
func mapping() map[string]any {
	props := make(map[string]any, len(schema.Columns)+3)
	for _, c := range schema.Columns {
		p := map[string]any{"type": c.ESType}
		if c.ESText {
			p["fields"] = map[string]any{"text": map[string]any{"type": "text"}}
		}
		props[c.Name] = p
	}
	keyword := map[string]any{"type": "keyword"}
	props["job"] = keyword
	props["generation"] = keyword
	props["indexed_at"] = map[string]any{"type": "date"}
	return map[string]any{
		"dynamic":    "strict",
		"_meta":      map[string]any{"schema_version": SchemaVersion, "managed_by": "clickstream indexer"},
		"properties": props,
	}
}

func (ix *Indexer) indexSettings() map[string]any {
	return map[string]any{
		"number_of_shards":   ix.cfg.Shards,
		"number_of_replicas": ix.cfg.Replicas,
	}
}

// templatePriority is above the priority (100) of Elasticsearch's built-in
// templates.
const templatePriority = 200

// Setup installs the index template (named after the alias, matching
// "<alias>-*") and, if the alias does not exist, creates the concrete index
// "<alias>-v1" and points the alias at it. It is idempotent and safe to
// run from several processes at once; IndexResult runs it on first use.
func (ix *Indexer) Setup(ctx context.Context) error {
	ix.setupMu.Lock()
	defer ix.setupMu.Unlock()
	if ix.setupDone {
		return nil
	}
	deadline := time.Now().Add(ix.cfg.RetryTimeout)
	alias := ix.cfg.Alias
	tmpl := map[string]any{
		"index_patterns": []string{alias + "-*"},
		"priority":       templatePriority,
		"template": map[string]any{
			"settings": ix.indexSettings(),
			"mappings": mapping(),
		},
		"_meta": map[string]any{"schema_version": SchemaVersion, "alias": alias},
	}
	if _, _, err := ix.callRetry(ctx, "put index template", deadline, func() esapi.Request {
		return esapi.IndicesPutIndexTemplateRequest{Name: alias, Body: jsonBody(tmpl)}
	}); err != nil {
		return err
	}
	indices, err := ix.aliasIndices(ctx, deadline)
	if err != nil {
		return err
	}
	if len(indices) == 0 {
		// No alias: a concrete index of that name would take every write.
		_, status, err := ix.callRetry(ctx, "check index "+alias, deadline, func() esapi.Request {
			return esapi.IndicesExistsRequest{Index: []string{alias}}
		}, http.StatusNotFound)
		if err != nil {
			return err
		}
		if status == http.StatusOK {
			return fmt.Errorf("%w: %q", ErrAliasIsIndex, alias)
		}
		first := alias + FirstIndexSuffix
		if err := ix.createIndex(ctx, first, deadline, true); err != nil {
			return err
		}
		actions := []map[string]any{{"add": map[string]any{"index": first, "alias": alias, "is_write_index": true}}}
		if _, _, err := ix.callRetry(ctx, "create alias", deadline, func() esapi.Request {
			return esapi.IndicesUpdateAliasesRequest{Body: jsonBody(map[string]any{"actions": actions})}
		}); err != nil {
			return err
		}
		ix.logger.Info("created index and alias", "index", first, "alias", alias)
	}
	ix.setupDone = true
	return nil
}

// createIndex creates a concrete index with the explicit mapping (not only
// through the template, so an index is right even if the template was
// changed by hand). An existing index is an error unless mayExist.
func (ix *Indexer) createIndex(ctx context.Context, name string, deadline time.Time, mayExist bool) error {
	body := map[string]any{"settings": ix.indexSettings(), "mappings": mapping()}
	_, _, err := ix.callRetry(ctx, "create index "+name, deadline, func() esapi.Request {
		return esapi.IndicesCreateRequest{Index: name, Body: jsonBody(body)}
	})
	var se *StatusError
	if errors.As(err, &se) && se.Type == "resource_already_exists_exception" {
		if mayExist {
			return nil
		}
		return fmt.Errorf("%w: %s", ErrIndexExists, name)
	}
	return err
}

// aliasIndices returns the concrete indices the alias points at, sorted;
// none if the alias does not exist.
func (ix *Indexer) aliasIndices(ctx context.Context, deadline time.Time) ([]string, error) {
	body, status, err := ix.callRetry(ctx, "get alias "+ix.cfg.Alias, deadline, func() esapi.Request {
		return esapi.IndicesGetAliasRequest{Name: []string{ix.cfg.Alias}}
	}, http.StatusNotFound)
	if err != nil {
		return nil, err
	}
	if status == http.StatusNotFound {
		return nil, nil
	}
	var resp map[string]json.RawMessage
	if err := json.Unmarshal(body, &resp); err != nil {
		return nil, fmt.Errorf("indexer: get alias: decoding the response: %w", err)
	}
	var out []string
	for idx := range resp {
		out = append(out, idx)
	}
	sort.Strings(out)
	return out, nil
}

// AliasIndices returns the concrete indices the alias points at.
func (ix *Indexer) AliasIndices(ctx context.Context) ([]string, error) {
	return ix.aliasIndices(ctx, time.Now().Add(ix.cfg.RetryTimeout))
}

// SwapAlias points the alias at index alone, in one atomic _aliases
// request (remove from every current index, add to index as the write
// index): readers see either the old indices or the new one, never both
// or none. It returns the indices the alias pointed at before. The old
// indices are kept (delete them once the new one is trusted).
func (ix *Indexer) SwapAlias(ctx context.Context, index string) ([]string, error) {
	if err := checkIndexName(index); err != nil {
		return nil, fmt.Errorf("indexer: swap alias to %q: %w", index, err)
	}
	if index == ix.cfg.Alias {
		return nil, fmt.Errorf("indexer: swap alias: the index and the alias are both %q", index)
	}
	deadline := time.Now().Add(ix.cfg.RetryTimeout)
	prev, err := ix.aliasIndices(ctx, deadline)
	if err != nil {
		return nil, err
	}
	actions := []map[string]any{}
	for _, old := range prev {
		if old != index {
			actions = append(actions, map[string]any{"remove": map[string]any{"index": old, "alias": ix.cfg.Alias}})
		}
	}
	actions = append(actions, map[string]any{"add": map[string]any{"index": index, "alias": ix.cfg.Alias, "is_write_index": true}})
	_, _, err = ix.callRetry(ctx, "swap alias", deadline, func() esapi.Request {
		return esapi.IndicesUpdateAliasesRequest{Body: jsonBody(map[string]any{"actions": actions})}
	})
	if err != nil {
		// A retried request may have been applied by an attempt whose
		// answer was lost: check before failing.
		if now, err2 := ix.aliasIndices(ctx, deadline); err2 == nil && len(now) == 1 && now[0] == index {
			err = nil
		}
	}
	if err != nil {
		return prev, err
	}
	ix.logger.Info("alias swapped", "alias", ix.cfg.Alias, "index", index, "previous", strings.Join(prev, ","))
	return prev, nil
}
