package ui

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/leaktest"
	"github.com/dataco/clickstream/internal/mtls"
	"github.com/dataco/clickstream/internal/pki"
)

func TestMain(m *testing.M) { leaktest.Main(m) }

var t0 = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

// hostile is a job id and label no template may pass through unescaped.
const hostile = `"><script>alert(1)</script><img src=x onerror=alert(2)>`

// fakeCluster answers from fixed data and records the limits it was asked
// for.
type fakeCluster struct {
	mu         sync.Mutex
	jobs       []Job
	detail     *JobDetail
	err        error
	lastLimit  int
	lastBefore string
}

func (f *fakeCluster) Jobs(_ context.Context, limit int, before string) ([]Job, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lastLimit, f.lastBefore = limit, before
	if f.err != nil {
		return nil, false, f.err
	}
	jobs := f.jobs
	if len(jobs) > limit {
		return jobs[:limit], true, nil
	}
	return jobs, false, nil
}

func (f *fakeCluster) Job(_ context.Context, id string, _ int) (*JobDetail, error) {
	if f.detail == nil || f.detail.Job.ID != id {
		return nil, fmt.Errorf("%w: job %s", ErrNotFound, id)
	}
	return f.detail, nil
}

func (f *fakeCluster) Workers(context.Context) ([]Worker, error) {
	return []Worker{{ID: "w-" + hostile, Addr: "127.0.0.1:1", Parallelism: 2, Running: 1, TasksDone: 1234, TasksFailed: 56, Started: t0, LastHeartbeat: t0}}, nil
}

func (f *fakeCluster) Schedule(context.Context, int) (*Schedule, error) {
	return &Schedule{Enabled: true, Window: time.Hour, Lateness: 5 * time.Minute, Out: "file:///out",
		Windows: []Window{{From: t0, To: t0.Add(time.Hour), Job: hostile, State: "done", Input: "files=1,events=2", Runs: 2, Provisional: true}}}, nil
}

func (f *fakeCluster) Ingest(context.Context) (*Ingest, error) {
	return &Ingest{Lake: "file:///lake", Sources: []Source{{Source: hostile, Seq: 3, End: 100, Watermark: t0, LastCommit: t0}}}, nil
}

func hostileCluster() *fakeCluster {
	j := Job{ID: hostile, State: "running", From: t0, To: t0.Add(time.Hour), Created: t0, Started: t0,
		TasksTotal: 4, TasksDone: 1, TasksRunning: 2, SubmittedBy: "spiffe://clickstream/operator/" + hostile,
		Error: hostile, Out: "file:///out/" + hostile}
	return &fakeCluster{
		jobs: []Job{j},
		detail: &JobDetail{Job: j, Tasks: []Task{
			{Task: 0, Bucket: 3, State: "done", Worker: hostile, Attempts: 2, Lost: 1, Started: t0, Finished: t0.Add(time.Second), LastError: hostile,
				Runs: []Attempt{
					{N: 1, Worker: "w1", Started: t0, Ended: t0.Add(500 * time.Millisecond), Outcome: "lost"},
					{N: 2, Worker: hostile, Started: t0.Add(600 * time.Millisecond), Ended: t0.Add(time.Second), Outcome: hostile},
				}},
			{Task: 1, Bucket: -1, State: "pending"},
		}},
	}
}

func newHandler(t *testing.T, c Cluster, opts Options) *http.ServeMux {
	t.Helper()
	if opts.Now == nil {
		opts.Now = func() time.Time { return t0.Add(2 * time.Second) }
	}
	h, err := New(c, opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Mount(mux)
	return mux
}

func get(t *testing.T, h http.Handler, url string) (int, string, http.Header) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, url, nil))
	return rec.Code, rec.Body.String(), rec.Header()
}

// TestEscaping: a job id, worker id, error or source name with markup in
// it is shown as text on every page and fragment, never as markup.
func TestEscaping(t *testing.T) {
	h := newHandler(t, hostileCluster(), Options{})
	for _, url := range []string{
		"/", "/?fragment=1", "/jobs/" + urlPath(hostile), "/jobs/" + urlPath(hostile) + "?fragment=1",
		"/workers", "/windows", "/ingest?fragment=1",
	} {
		t.Run(url, func(t *testing.T) {
			code, body, hdr := get(t, h, url)
			if code != http.StatusOK {
				t.Fatalf("status %d:\n%s", code, body)
			}
			for _, bad := range []string{"<script>alert", "<img src=x", `"><script`} {
				if strings.Contains(body, bad) {
					t.Errorf("unescaped %q in:\n%s", bad, body)
				}
			}
			if !strings.Contains(body, "&lt;script&gt;alert(1)&lt;/script&gt;") && !strings.Contains(body, "%3cscript%3e") {
				t.Errorf("the hostile text is not shown escaped:\n%s", body)
			}
			if strings.Contains(body, `data-live="/jobs/"><`) {
				t.Errorf("the live URL is not escaped:\n%s", body)
			}
			if csp := hdr.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") {
				t.Errorf("Content-Security-Policy %q", csp)
			}
		})
	}
}

func urlPath(s string) string {
	return strings.NewReplacer("/", "%2F", "?", "%3F", "#", "%23", " ", "%20", "<", "%3C", ">", "%3E", `"`, "%22").Replace(s)
}

// TestPages: the pages show their data; a fragment is the live part only;
// an unknown job is 404; a failing cluster shows why.
func TestPages(t *testing.T) {
	c := hostileCluster()
	c.jobs[0].ID, c.detail.Job.ID = "20261127-100000-abcd", "20261127-100000-abcd"
	h := newHandler(t, c, Options{})
	code, body, _ := get(t, h, "/")
	if code != 200 || !strings.Contains(body, `href="/jobs/20261127-100000-abcd"`) || !strings.Contains(body, "1/4") || !strings.Contains(body, "<html") {
		t.Errorf("jobs page %d:\n%s", code, body)
	}
	_, frag, _ := get(t, h, "/?fragment=1")
	if strings.Contains(frag, "<html") || !strings.Contains(frag, "1/4") {
		t.Errorf("fragment:\n%s", frag)
	}
	c.detail.Job.HasResult, c.detail.Job.Rows, c.detail.Job.Revision = true, 7, 3
	_, body, _ = get(t, h, "/jobs/20261127-100000-abcd")
	for _, want := range []string{`<dd>3 (provisional)</dd>`, `id="timeline"`, `class="b-lost"`, `class="b-other"`, `data-task="0"`, `data-attempts="2"`} {
		if !strings.Contains(body, want) {
			t.Errorf("job page lacks %s:\n%s", want, body)
		}
	}
	if _, body, _ := get(t, h, "/windows"); !strings.Contains(body, ">provisional<") {
		t.Errorf("windows page does not mark the provisional window:\n%s", body)
	}
	if _, body, _ := get(t, h, "/workers"); !strings.Contains(body, ">1234<") || !strings.Contains(body, ">56<") {
		t.Errorf("workers page without the tasks done and failed:\n%s", body)
	}
	if code, _, _ := get(t, h, "/jobs/nope"); code != http.StatusNotFound {
		t.Errorf("unknown job: %d", code)
	}
	c.err = errors.New("etcd down")
	if code, body, _ := get(t, h, "/?fragment=1"); code != 200 || !strings.Contains(body, "etcd down") {
		t.Errorf("failing cluster, fragment: %d\n%s", code, body)
	}
	if code, _, _ := get(t, h, "/"); code != http.StatusServiceUnavailable {
		t.Errorf("failing cluster, page: %d", code)
	}
	if code, body, _ := get(t, h, "/static/ui.js"); code != 200 || !strings.Contains(body, "data-live") {
		t.Errorf("ui.js: %d", code)
	}
	if code, _, _ := get(t, h, "/static/"); code != http.StatusNotFound {
		t.Errorf("/static/ lists its folder: %d", code)
	}
}

// TestLimits: the jobs list is paged, its page size bounded.
func TestLimits(t *testing.T) {
	c := &fakeCluster{}
	for i := range 120 {
		c.jobs = append(c.jobs, Job{ID: fmt.Sprintf("20261127-1000%02d-%04d", i%60, i), State: "succeeded"})
	}
	h := newHandler(t, c, Options{})
	code, body, _ := get(t, h, "/api/jobs")
	var resp struct {
		Jobs []Job
		Next string
	}
	if err := json.Unmarshal([]byte(body), &resp); err != nil || code != 200 {
		t.Fatalf("%d %v: %s", code, err, body)
	}
	if len(resp.Jobs) != DefaultJobs || resp.Next != resp.Jobs[DefaultJobs-1].ID {
		t.Errorf("%d jobs, next %q", len(resp.Jobs), resp.Next)
	}
	get(t, h, "/?before="+resp.Next+"&limit=10")
	if c.lastLimit != 10 || c.lastBefore != resp.Next {
		t.Errorf("asked for %d before %q", c.lastLimit, c.lastBefore)
	}
	for _, q := range []string{"limit=0", "limit=100000", "limit=x"} {
		if code, _, _ := get(t, h, "/api/jobs?"+q); code != http.StatusBadRequest {
			t.Errorf("%s: %d, want 400", q, code)
		}
	}
}

// TestRoles: under mutual TLS a viewer, an operator and a coordinator see
// the UI; a worker's certificate, one of another CA and none are refused.
// /healthz stays open to probes without a certificate.
func TestRoles(t *testing.T) {
	ca, err := pki.NewCA("test CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, err := pki.NewCA("other CA", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	server, err := mtls.Issue(ca, mtls.Identity{Role: mtls.RoleCoordinator, Name: "c1"}, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	mux := newHandler(t, hostileCluster(), Options{TLS: server})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = mtls.ServerTLSConfig(server)
	srv.StartTLS()
	t.Cleanup(srv.Close)

	client := func(issuer *pki.CA, role mtls.Role) *http.Client {
		cfg := &tls.Config{RootCAs: ca.Pool(), ServerName: "localhost", MinVersion: tls.VersionTLS12}
		if role != "" {
			c, err := issuer.Issue(pki.Request{URI: mtls.Identity{Role: role, Name: "u1"}.URI()})
			if err != nil {
				t.Fatal(err)
			}
			cert, err := c.TLS()
			if err != nil {
				t.Fatal(err)
			}
			cfg.Certificates = []tls.Certificate{cert}
		}
		tr := &http.Transport{TLSClientConfig: cfg}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 10 * time.Second}
	}
	for _, tc := range []struct {
		name string
		ca   *pki.CA
		role mtls.Role
		path string
		want int
	}{
		{"viewer", ca, mtls.RoleViewer, "/", 200},
		{"viewer api", ca, mtls.RoleViewer, "/api/workers", 200},
		{"operator", ca, mtls.RoleOperator, "/workers", 200},
		{"coordinator", ca, mtls.RoleCoordinator, "/ingest", 200},
		{"worker", ca, mtls.RoleWorker, "/", http.StatusForbidden},
		{"worker api", ca, mtls.RoleWorker, "/api/jobs", http.StatusForbidden},
		{"worker static", ca, mtls.RoleWorker, "/static/ui.js", http.StatusForbidden},
		{"no certificate", ca, "", "/", http.StatusUnauthorized},
		{"another CA", other, mtls.RoleViewer, "/", http.StatusUnauthorized},
		{"probe without certificate", ca, "", "/healthz", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := client(tc.ca, tc.role).Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
		})
	}
}

// blockingCluster's Workers waits until release is closed.
type blockingCluster struct {
	fakeCluster
	entered chan struct{}
	release chan struct{}
}

func (b *blockingCluster) Workers(ctx context.Context) ([]Worker, error) {
	b.entered <- struct{}{}
	select {
	case <-b.release:
		return nil, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestBusy: at most MaxReading requests read the cluster at once; one
// more waits for a turn, and gets 503 when none comes in time.
func TestBusy(t *testing.T) {
	b := &blockingCluster{entered: make(chan struct{}, MaxReading+1), release: make(chan struct{})}
	h, err := New(b, Options{})
	if err != nil {
		t.Fatal(err)
	}
	h.wait = 100 * time.Millisecond
	mux := http.NewServeMux()
	h.Mount(mux)
	var wg sync.WaitGroup
	for range MaxReading {
		wg.Go(func() {
			if code, _, _ := get(t, mux, "/api/workers"); code != http.StatusOK {
				t.Errorf("a reading request: %d", code)
			}
		})
	}
	for range MaxReading {
		<-b.entered
	}
	if code, body, _ := get(t, mux, "/workers"); code != http.StatusServiceUnavailable || !strings.Contains(body, "busy") {
		t.Errorf("one request too many: %d %s", code, body)
	}
	if code, _, _ := get(t, mux, "/static/ui.css"); code != http.StatusOK {
		t.Errorf("static files wait for no turn: %d", code)
	}
	close(b.release)
	wg.Wait()
	if code, _, _ := get(t, mux, "/api/workers"); code != http.StatusOK {
		t.Errorf("after the others: %d", code)
	}
}
