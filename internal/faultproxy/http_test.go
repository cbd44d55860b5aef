package faultproxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// upstream is an HTTP server on 127.0.0.1 that counts the requests it
// gets and answers "ok" with the Host header it saw.
func upstream(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Host", r.Host)
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(srv.Close)
	return srv, &n
}

func newHTTP(t *testing.T, target string, seed uint64) *HTTP {
	t.Helper()
	p, err := NewHTTP(target, seed, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// client never reuses connections, so that a dropped one does not spill
// into the next request.
func client() *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
}

func TestHTTPForwardsKeepingHost(t *testing.T) {
	srv, n := upstream(t)
	p := newHTTP(t, srv.URL, 1)
	resp, err := client().Get(p.URL() + "/bucket/key")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" || n.Load() != 1 {
		t.Fatalf("status %d body %q upstream requests %d", resp.StatusCode, body, n.Load())
	}
	if got, want := resp.Header.Get("X-Host"), strings.TrimPrefix(p.URL(), "http://"); got != want {
		t.Errorf("upstream saw Host %q, want the proxy's %q", got, want)
	}
}

func TestHTTPInjectedFaults(t *testing.T) {
	srv, n := upstream(t)
	tests := []struct {
		kind      Kind
		status    int    // 0: the request fails
		code      string // S3 error code in the body
		forwarded int64
	}{
		{kind: SlowDown, status: 503, code: "<Code>SlowDown</Code>"},
		{kind: InternalError, status: 500, code: "<Code>InternalError</Code>"},
		{kind: Drop},
		{kind: DropAfter, forwarded: 1},
	}
	for _, tc := range tests {
		t.Run(tc.kind.String(), func(t *testing.T) {
			p := newHTTP(t, srv.URL, 1)
			before := n.Load()
			p.Inject(tc.kind, 1)
			resp, err := client().Post(p.URL()+"/bucket/key", "application/octet-stream", strings.NewReader("payload"))
			if tc.status == 0 {
				if err == nil {
					resp.Body.Close()
					t.Fatalf("status %d, want a failed request", resp.StatusCode)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.status || !strings.Contains(string(body), tc.code) || !strings.Contains(string(body), "<Resource>/bucket/key</Resource>") {
					t.Fatalf("status %d body %s", resp.StatusCode, body)
				}
				if resp.Header.Get("Content-Type") != "application/xml" {
					t.Errorf("content type %q", resp.Header.Get("Content-Type"))
				}
			}
			if got := n.Load() - before; got != tc.forwarded {
				t.Errorf("upstream got %d requests, want %d", got, tc.forwarded)
			}
			if p.Count(tc.kind) != 1 || p.Injected() != 1 {
				t.Errorf("count %d, injected %d", p.Count(tc.kind), p.Injected())
			}
			// The next request goes through.
			resp, err = client().Get(p.URL() + "/bucket/key")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("after the fault: status %d", resp.StatusCode)
			}
		})
	}
}

func TestHTTPLatency(t *testing.T) {
	srv, _ := upstream(t)
	p := newHTTP(t, srv.URL, 1)
	p.SetRates(Rates{Delay: 150 * time.Millisecond})
	p.Inject(Latency, 1)
	start := time.Now()
	resp, err := client().Get(p.URL() + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if d := time.Since(start); d < 150*time.Millisecond || resp.StatusCode != 200 {
		t.Fatalf("status %d after %v, want 200 after at least 150ms", resp.StatusCode, d)
	}
}

func TestHTTPFilter(t *testing.T) {
	srv, _ := upstream(t)
	p := newHTTP(t, srv.URL, 1)
	p.SetFilter(func(r *http.Request) bool { return r.Method == http.MethodPut })
	p.SetRates(Rates{SlowDown: 1})
	resp, err := client().Get(p.URL() + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET: status %d, want 200 (filtered out)", resp.StatusCode)
	}
	req, _ := http.NewRequest(http.MethodPut, p.URL()+"/x", strings.NewReader("v"))
	resp, err = client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 {
		t.Fatalf("PUT: status %d, want 503", resp.StatusCode)
	}
	p.Reset()
	req, _ = http.NewRequest(http.MethodPut, p.URL()+"/x", strings.NewReader("v"))
	if resp, err = client().Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("PUT after Reset: status %d", resp.StatusCode)
	}
}

// TestHTTPSeededRates: the same seed gives the same faults to the same
// sequence of requests; another seed gives others.
func TestHTTPSeededRates(t *testing.T) {
	srv, _ := upstream(t)
	outcomes := func(seed uint64) string {
		p := newHTTP(t, srv.URL, seed)
		p.SetRates(Rates{SlowDown: 0.3, InternalError: 0.2, Drop: 0.1})
		var b strings.Builder
		for range 60 {
			resp, err := client().Get(p.URL() + "/x")
			switch {
			case err != nil:
				b.WriteByte('x')
			default:
				resp.Body.Close()
				b.WriteByte("0123456789"[resp.StatusCode/100])
			}
		}
		return b.String()
	}
	a, b, c := outcomes(42), outcomes(42), outcomes(43)
	if a != b {
		t.Fatalf("seed 42 twice:\n%s\n%s", a, b)
	}
	if a == c {
		t.Errorf("seeds 42 and 43 gave the same faults: %s", a)
	}
	for _, ch := range "25x" {
		if !strings.ContainsRune(a, ch) {
			t.Errorf("outcomes %s lack %c", a, ch)
		}
	}
}

func TestHTTPBadTarget(t *testing.T) {
	for _, target := range []string{"", "127.0.0.1:80", "https://127.0.0.1:1", "http://"} {
		if p, err := NewHTTP(target, 1, nil); err == nil {
			_ = p.Close()
			t.Errorf("NewHTTP(%q): no error", target)
		}
	}
}

func TestKindString(t *testing.T) {
	if SlowDown.String() != "slowdown" || Kind(99).String() != "kind(99)" {
		t.Fatal(SlowDown.String(), Kind(99).String())
	}
}
