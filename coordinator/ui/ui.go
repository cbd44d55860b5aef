package ui

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/dataco/clickstream/internal/mtls"
)

// Limits of one request's work.
const (
	// DefaultJobs and MaxJobs bound a page of the jobs list (?limit=).
	DefaultJobs = 50
	MaxJobs     = 200
	// MaxTasks bounds the tasks shown of one job.
	MaxTasks = 2000
	// MaxWindows bounds the scheduler's windows shown.
	MaxWindows = 200
	// requestTimeout bounds the reads of one request.
	requestTimeout = 5 * time.Second
	// MaxReading bounds the requests reading the cluster at once; the
	// others wait for a turn within their timeout, so that many open pages
	// cannot load etcd without bound.
	MaxReading = 16
	// DefaultRefresh is how often a page polls its live part.
	DefaultRefresh = time.Second
)

// Roles may see the UI under mutual TLS: everyone but workers.
var Roles = []mtls.Role{mtls.RoleViewer, mtls.RoleOperator, mtls.RoleCoordinator}

// Options configure a Handler.
type Options struct {
	// TLS, if set, is the server's TLS material: every page and endpoint
	// then requires a client certificate it trusts, of one of Roles.
	TLS *mtls.Source
	// Logger may be nil.
	Logger *slog.Logger
	// Refresh is the pages' polling interval; 0: DefaultRefresh.
	Refresh time.Duration
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Handler serves the UI: HTML pages whose live part a small script polls
// (?fragment=1 renders only that part) and the same data as JSON under
// /api/.
type Handler struct {
	c     Cluster
	opts  Options
	log   *slog.Logger
	pages map[string]*template.Template
	turns chan struct{} // MaxReading tokens
	wait  time.Duration // longest wait for a turn
}

// The pages, by template file.
var pageFiles = []string{"jobs.html", "job.html", "workers.html", "windows.html", "ingest.html"}

// New returns a Handler reading from c.
func New(c Cluster, opts Options) (*Handler, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultRefresh
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{c: c, opts: opts, log: opts.Logger, pages: map[string]*template.Template{}, turns: make(chan struct{}, MaxReading), wait: requestTimeout}
	for _, f := range pageFiles {
		t, err := template.New(f).Funcs(h.funcs()).ParseFS(templateFS, "templates/layout.html", "templates/"+f)
		if err != nil {
			return nil, fmt.Errorf("ui: %w", err)
		}
		h.pages[f] = t
	}
	return h, nil
}

// Mount registers the UI's routes on mux: the pages at /, /jobs/{id},
// /workers, /windows and /ingest, JSON under /api/, and /static/.
func (h *Handler) Mount(mux *http.ServeMux) {
	static, _ := fs.Sub(staticFS, "static")
	routes := map[string]http.Handler{
		"GET /{$}":           h.reading(h.jobsPage),
		"GET /jobs/{id}":     h.reading(h.jobPage),
		"GET /workers":       h.reading(h.workersPage),
		"GET /windows":       h.reading(h.windowsPage),
		"GET /ingest":        h.reading(h.ingestPage),
		"GET /api/jobs":      h.reading(h.jobsAPI),
		"GET /api/jobs/{id}": h.reading(h.jobAPI),
		"GET /api/workers":   h.reading(h.api(func(ctx context.Context, _ *http.Request) (any, error) { return h.c.Workers(ctx) })),
		"GET /api/windows":   h.reading(h.api(func(ctx context.Context, _ *http.Request) (any, error) { return h.c.Schedule(ctx, MaxWindows) })),
		"GET /api/ingest":    h.reading(h.api(func(ctx context.Context, _ *http.Request) (any, error) { return h.c.Ingest(ctx) })),
		"GET /static/{file}": http.StripPrefix("/static/", http.FileServerFS(static)), // files only, no listing
	}
	for pattern, handler := range routes {
		mux.Handle(pattern, h.guard(handler))
	}
}

// guard adds the client check (under TLS) and the headers every answer
// carries: no caching, no framing, scripts and styles from this server
// only.
func (h *Handler) guard(next http.Handler) http.Handler {
	if h.opts.TLS != nil {
		next = mtls.RequireRoles(h.opts.TLS, Roles, next)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// reading runs next when one of MaxReading turns is free, waiting for one
// for at most requestTimeout (then 503: busy).
func (h *Handler) reading(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t := time.NewTimer(h.wait)
		defer t.Stop()
		select {
		case h.turns <- struct{}{}:
		case <-r.Context().Done():
			return
		case <-t.C:
			w.Header().Set("Retry-After", "1")
			http.Error(w, "busy: too many requests reading the cluster at once", http.StatusServiceUnavailable)
			return
		}
		defer func() { <-h.turns }()
		next(w, r)
	}
}

// page is what a page's templates get.
type page struct {
	Title   string
	Nav     string // the navigation entry to highlight
	Live    string // URL of the live part
	Refresh int64  // ms
	Now     time.Time
	Error   string
	Data    any
}

// render writes the page file (whole, or its live part for ?fragment=1).
func (h *Handler) render(w http.ResponseWriter, r *http.Request, file string, status int, p page) {
	p.Now, p.Refresh = h.opts.Now(), h.opts.Refresh.Milliseconds()
	p.Live = r.URL.EscapedPath() + "?fragment=1"
	if q := r.URL.Query(); q.Get("before") != "" || q.Get("limit") != "" {
		q.Set("fragment", "1")
		p.Live = r.URL.EscapedPath() + "?" + q.Encode()
	}
	name := "layout"
	if r.URL.Query().Get("fragment") != "" {
		name = "live"
	}
	var buf bytes.Buffer
	if err := h.pages[file].ExecuteTemplate(&buf, name, p); err != nil {
		h.log.Error("ui: render", "page", file, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// failed turns a read error into the page's status and message.
func (h *Handler) failed(err error) (int, string) {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound, err.Error()
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest, err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusServiceUnavailable, "the cluster did not answer in time; retrying"
	}
	h.log.Debug("ui: read failed", "err", err) // shown on the page; every poll would log it again
	return http.StatusServiceUnavailable, "cannot read the cluster's state now: " + err.Error()
}

func (h *Handler) pageOf(r *http.Request, title, nav string, err error, data any) (int, page) {
	p := page{Title: title, Nav: nav, Data: data}
	status := http.StatusOK
	if err != nil {
		status, p.Error = h.failed(err)
		if r.URL.Query().Get("fragment") != "" && status == http.StatusServiceUnavailable {
			status = http.StatusOK // the page keeps polling and shows why
		}
	}
	return status, p
}

// jobsList is the data of the jobs page.
type jobsList struct {
	Jobs  []Job
	Next  string // ?before= of the next page; empty on the last
	Limit int
}

func listParams(r *http.Request) (limit int, before string, err error) {
	limit = DefaultJobs
	if s := r.URL.Query().Get("limit"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 || limit > MaxJobs {
			return 0, "", fmt.Errorf("%w: limit %q: want 1 to %d", ErrInvalid, s, MaxJobs)
		}
	}
	return limit, r.URL.Query().Get("before"), nil
}

func (h *Handler) readJobs(ctx context.Context, r *http.Request) (*jobsList, error) {
	limit, before, err := listParams(r)
	if err != nil {
		return nil, err
	}
	jobs, more, err := h.c.Jobs(ctx, limit, before)
	if err != nil {
		return nil, err
	}
	l := &jobsList{Jobs: jobs, Limit: limit}
	if more && len(jobs) > 0 {
		l.Next = jobs[len(jobs)-1].ID
	}
	return l, nil
}

func (h *Handler) jobsPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	l, err := h.readJobs(ctx, r)
	status, p := h.pageOf(r, "Jobs", "jobs", err, l)
	h.render(w, r, "jobs.html", status, p)
}

func (h *Handler) jobPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	id := r.PathValue("id")
	d, err := h.c.Job(ctx, id, MaxTasks)
	var data *jobView
	if err == nil {
		data = newJobView(d, h.opts.Now())
	}
	status, p := h.pageOf(r, "Job "+id, "jobs", err, data)
	h.render(w, r, "job.html", status, p)
}

func (h *Handler) workersPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	ws, err := h.c.Workers(ctx)
	status, p := h.pageOf(r, "Workers", "workers", err, ws)
	h.render(w, r, "workers.html", status, p)
}

func (h *Handler) windowsPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	s, err := h.c.Schedule(ctx, MaxWindows)
	status, p := h.pageOf(r, "Windows", "windows", err, s)
	h.render(w, r, "windows.html", status, p)
}

func (h *Handler) ingestPage(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
	defer cancel()
	in, err := h.c.Ingest(ctx)
	status, p := h.pageOf(r, "Ingest", "ingest", err, in)
	h.render(w, r, "ingest.html", status, p)
}

// api serves read's answer as JSON.
func (h *Handler) api(read func(context.Context, *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), requestTimeout)
		defer cancel()
		v, err := read(ctx, r)
		if err != nil {
			status, msg := h.failed(err)
			writeJSON(w, status, map[string]string{"error": msg})
			return
		}
		writeJSON(w, http.StatusOK, v)
	}
}

func (h *Handler) jobsAPI(w http.ResponseWriter, r *http.Request) {
	h.api(func(ctx context.Context, r *http.Request) (any, error) {
		l, err := h.readJobs(ctx, r)
		if err != nil {
			return nil, err
		}
		return struct {
			Jobs []Job  `json:"jobs"`
			Next string `json:"next,omitempty"`
		}{l.Jobs, l.Next}, nil
	}).ServeHTTP(w, r)
}

func (h *Handler) jobAPI(w http.ResponseWriter, r *http.Request) {
	h.api(func(ctx context.Context, r *http.Request) (any, error) {
		return h.c.Job(ctx, r.PathValue("id"), MaxTasks)
	}).ServeHTTP(w, r)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"error":"encode"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}
