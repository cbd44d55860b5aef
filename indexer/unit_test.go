package indexer

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
)

func TestDocID(t *testing.T) {
	a := DocID(winA.From, winA.To, "https://x/a", "US")
	if !regexp.MustCompile(`^[0-9a-f]{32}$`).MatchString(a) {
		t.Fatalf("DocID = %q, want 32 hex digits", a)
	}
	if b := DocID(winA.From.In(time.FixedZone("X", 3600)), winA.To, "https://x/a", "US"); b != a {
		t.Errorf("DocID depends on the time zone: %s != %s", b, a)
	}
	seen := map[string]string{a: "base"}
	for name, id := range map[string]string{
		"other start":   DocID(winB.From, winA.To, "https://x/a", "US"),
		"other end":     DocID(winA.From, winB.To, "https://x/a", "US"),
		"other url":     DocID(winA.From, winA.To, "https://x/b", "US"),
		"other country": DocID(winA.From, winA.To, "https://x/a", "DE"),
		"shifted split": DocID(winA.From, winA.To, "https://x/aU", "S"),
	} {
		if prev, dup := seen[id]; dup {
			t.Errorf("%s has the same id as %s", name, prev)
		}
		seen[id] = name
	}
}

func TestDeadLetterKey(t *testing.T) {
	if got, want := DeadLetterKey(winA, "job-7"), "_index_rejected/20261127T000000Z_20261127T010000Z/job-7.ndjson"; got != want {
		t.Errorf("DeadLetterKey = %q, want %q", got, want)
	}
	if got := DeadLetterKey(winA, "a/b"); !strings.HasSuffix(got, "/a_b.ndjson") {
		t.Errorf("a job with a slash: %q", got)
	}
	if got := DeadLetterKey(winA, ""); !strings.HasSuffix(got, "/unknown-job.ndjson") {
		t.Errorf("no job: %q", got)
	}
}

func TestReportString(t *testing.T) {
	r := Report{Index: "clickstream-aggregates", Window: winA, Job: "j1", Indexed: 10, Rejected: 2, Duration: 1500 * time.Millisecond}
	want := "indexed=10 rejected=2 window=2026-11-27T00:00:00Z/2026-11-27T01:00:00Z index=clickstream-aggregates job=j1 stale_deleted=0 retried=0 duration=1.5s"
	if got := r.String(); got != want {
		t.Errorf("String =\n %s\nwant\n %s", got, want)
	}
}

func TestResultWindow(t *testing.T) {
	rows := makeRows(winA, 3)
	tests := []struct {
		name string
		rows []schema.Row
		meta results.Meta
		want string
	}{
		{"from meta", rows, metaOf("j", winA, rows), ""},
		{"from rows", rows, results.Meta{}, ""},
		{"empty result", nil, metaOf("j", winA, nil), ""},
		{"no window", nil, results.Meta{}, "both ends"},
		{"row of another window", rows, metaOf("j", winB, rows), "row 0 has window"},
		{"sub-millisecond", nil, metaOf("j", aggregate.Window{From: winA.From.Add(time.Microsecond), To: winA.To}, nil), "milliseconds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := resultWindow(tt.rows, tt.meta)
			if tt.want == "" {
				if err != nil || !w.From.Equal(winA.From) || !w.To.Equal(winA.To) {
					t.Errorf("resultWindow = %s, %v", w, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrBadResult) {
				t.Errorf("resultWindow error = %v, want ErrBadResult containing %q", err, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	for attempt := 1; attempt < 40; attempt++ {
		full := min(100*time.Millisecond<<min(attempt-1, 20), 5*time.Second)
		for range 20 {
			d := backoff(attempt, 100*time.Millisecond, 5*time.Second)
			if d < full/2 || d > full {
				t.Fatalf("backoff(%d) = %s, want in [%s, %s]", attempt, d, full/2, full)
			}
		}
	}
}

func TestRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{errors.New("dial tcp 127.0.0.1:19200: connect: connection refused"), true},
		{fmt.Errorf("flush: %w", &StatusError{Status: 429}), true},
		{fmt.Errorf("flush: %w", &StatusError{Status: 503}), true},
		{&StatusError{Status: 500}, true},
		{fmt.Errorf("flush: %w", &StatusError{Status: 401}), false},
		{&StatusError{Status: 413}, false},
		{context.Canceled, false},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), false},
		{ErrClosed, false},
		{errors.New("the client noticed that the server is not Elasticsearch and we do not support this unknown product"), false},
		{fmt.Errorf("ping: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), false},
		{fmt.Errorf("ping: %w", x509.HostnameError{Host: "es"}), false},
	}
	for _, tt := range tests {
		if got := retryable(tt.err); got != tt.want {
			t.Errorf("retryable(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestStatusErrorDecoding(t *testing.T) {
	e := newStatusError(404, []byte(`{"error":{"type":"index_not_found_exception","reason":"no such index [x]"},"status":404}`))
	if e.Type != "index_not_found_exception" || e.Reason != "no such index [x]" {
		t.Errorf("object error: %+v", e)
	}
	e = newStatusError(404, []byte(`{"error":"alias [x] missing","status":404}`))
	if e.Type != "" || e.Reason != "alias [x] missing" {
		t.Errorf("string error: %+v", e)
	}
	e = newStatusError(502, []byte("<html>bad gateway</html>"))
	if e.Reason != "<html>bad gateway</html>" || !strings.Contains(e.Error(), "502") {
		t.Errorf("non-JSON error: %+v", e)
	}
}

func TestEncodeRejectsNonFiniteNumbers(t *testing.T) {
	rows := makeRows(winA, 3)
	rows[1].TotalTimeSpentS = math.Inf(1)
	ix := &Indexer{metrics: mustMetrics(t)}
	docs, rej, err := (&Writer{ix: ix, index: "x"}).encode(rows, "j", "g", winA.From)
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || len(rej) != 1 || rej[0].ErrorType != "client_encoding_error" || !strings.Contains(string(rej[0].Document), `"+Inf"`) {
		t.Errorf("docs %d, rejections %+v", len(docs), rej)
	}
	rows[2] = rows[0]
	if _, _, err := (&Writer{ix: ix, index: "x"}).encode(rows, "j", "g", winA.From); !errors.Is(err, ErrBadResult) {
		t.Errorf("duplicate rows: %v", err)
	}
}

func TestTopURLsCurl(t *testing.T) {
	got := TopURLsCurl("http://user:secret@127.0.0.1:19200/", "clicks", &winA, 3)
	if strings.Contains(got, "secret") {
		t.Errorf("credentials in the curl command: %s", got)
	}
	for _, want := range []string{"curl ", "'http://127.0.0.1:19200/clicks/_search?filter_path=aggregations&pretty'", `"size":3`, "2026-11-27T00:00:00Z"} {
		if !strings.Contains(got, want) {
			t.Errorf("curl command %s does not contain %s", got, want)
		}
	}
	if got := shellQuote("it's"); got != `'it'\''s'` {
		t.Errorf("shellQuote = %s", got)
	}
}

func mustMetrics(t *testing.T) *metrics {
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
