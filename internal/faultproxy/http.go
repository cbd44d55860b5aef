package faultproxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Kind is a fault the HTTP proxy injects into one request.
type Kind int

// The faults of the HTTP proxy.
const (
	// None forwards the request unchanged.
	None Kind = iota
	// SlowDown answers 503 with an S3 "SlowDown" error body, without
	// forwarding: the throttling answer of S3.
	SlowDown
	// InternalError answers 500 with an S3 "InternalError" body, without
	// forwarding.
	InternalError
	// Latency waits Rates.Delay, then forwards.
	Latency
	// Drop closes the client's connection without an answer and without
	// forwarding.
	Drop
	// DropAfter forwards the request, discards the answer and closes the
	// client's connection: the request took effect, the client cannot know.
	DropAfter
	numKinds
)

var kindNames = [numKinds]string{"none", "slowdown", "internal-error", "latency", "drop", "drop-after"}

func (k Kind) String() string {
	if k < 0 || k >= numKinds {
		return "kind(" + strconv.Itoa(int(k)) + ")"
	}
	return kindNames[k]
}

// Rates are the per-request probabilities of each fault, drawn from the
// proxy's seeded source; their sum should not exceed 1.
type Rates struct {
	SlowDown, InternalError, Latency, Drop, DropAfter float64
	// Delay is the latency a Latency fault adds.
	Delay time.Duration
}

// HTTP is a reverse proxy in front of one S3 endpoint that injects faults
// into the requests it forwards: by Rates drawn from a seeded source, or
// forced onto the next requests with Inject. It listens on 127.0.0.1.
//
// The Host header is forwarded unchanged, so that AWS signatures made for
// the proxy's address still verify at the endpoint.
type HTTP struct {
	logger *slog.Logger
	ln     net.Listener
	srv    *http.Server
	rp     *httputil.ReverseProxy
	done   chan struct{} // closed when Serve returns

	mu     sync.Mutex
	rng    *rand.Rand
	rates  Rates
	forced []Kind
	filter func(*http.Request) bool

	requests atomic.Int64
	counts   [numKinds]atomic.Int64
}

// NewHTTP starts a proxy to target (http://host:port) on a free port of
// 127.0.0.1. seed fixes the sequence of draws of Rates. Close stops it.
func NewHTTP(target string, seed uint64, logger *slog.Logger) (*HTTP, error) {
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return nil, fmt.Errorf("faultproxy: target %q: want http://host:port", target)
	}
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("faultproxy: listen: %w", err)
	}
	p := &HTTP{
		logger: logger,
		ln:     ln,
		done:   make(chan struct{}),
		rng:    rand.New(rand.NewPCG(seed, 0xfa017)),
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // keep the signed Host
		},
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 64,
			IdleConnTimeout:     30 * time.Second,
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			p.logger.Debug("upstream error", "method", r.Method, "path", r.URL.Path, "err", err)
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(p.done)
		_ = p.srv.Serve(ln)
	}()
	return p, nil
}

// URL is the proxy's endpoint, http://127.0.0.1:port.
func (p *HTTP) URL() string { return "http://" + p.ln.Addr().String() }

// SetRates replaces the fault probabilities; the zero Rates forwards
// everything.
func (p *HTTP) SetRates(r Rates) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rates = r
}

// Inject forces fault k onto the next n eligible requests, before any drawn
// by Rates. A Latency fault waits the current Rates.Delay.
func (p *HTTP) Inject(k Kind, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range n {
		p.forced = append(p.forced, k)
	}
}

// SetFilter limits faults to the requests for which f returns true (nil:
// every request). Other requests are forwarded unchanged and draw nothing.
func (p *HTTP) SetFilter(f func(*http.Request) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.filter = f
}

// Reset forwards everything from now on: no rates, no forced faults.
func (p *HTTP) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rates = Rates{}
	p.forced = nil
}

// Count is how many times fault k was injected.
func (p *HTTP) Count(k Kind) int64 {
	if k < 0 || k >= numKinds {
		return 0
	}
	return p.counts[k].Load()
}

// Injected is the number of requests that got a fault other than None.
func (p *HTTP) Injected() int64 {
	var n int64
	for k := None + 1; k < numKinds; k++ {
		n += p.counts[k].Load()
	}
	return n
}

// Requests is the number of requests the proxy received.
func (p *HTTP) Requests() int64 { return p.requests.Load() }

// Close stops the proxy: no new connections; open ones are closed.
func (p *HTTP) Close() error {
	err := p.srv.Close()
	<-p.done
	if t, ok := p.rp.Transport.(*http.Transport); ok {
		t.CloseIdleConnections()
	}
	return err
}

// decide picks the fault of one request and its delay.
func (p *HTTP) decide(r *http.Request) (Kind, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.filter != nil && !p.filter(r) {
		return None, 0
	}
	if len(p.forced) > 0 {
		k := p.forced[0]
		p.forced = p.forced[1:]
		return k, p.rates.Delay
	}
	rt := p.rates
	if rt.SlowDown+rt.InternalError+rt.Latency+rt.Drop+rt.DropAfter <= 0 {
		return None, 0
	}
	x := p.rng.Float64()
	for _, c := range []struct {
		k Kind
		p float64
	}{{SlowDown, rt.SlowDown}, {InternalError, rt.InternalError}, {Latency, rt.Latency}, {Drop, rt.Drop}, {DropAfter, rt.DropAfter}} {
		if x < c.p {
			return c.k, rt.Delay
		}
		x -= c.p
	}
	return None, 0
}

func (p *HTTP) serve(w http.ResponseWriter, r *http.Request) {
	p.requests.Add(1)
	k, delay := p.decide(r)
	p.counts[k].Add(1)
	if k != None {
		p.logger.Debug("fault", "kind", k, "method", r.Method, "path", r.URL.Path)
	}
	switch k {
	case SlowDown:
		writeS3Error(w, r, http.StatusServiceUnavailable, "SlowDown", "Please reduce your request rate.")
	case InternalError:
		writeS3Error(w, r, http.StatusInternalServerError, "InternalError", "We encountered an internal error. Please try again.")
	case Drop:
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
		hangUp(w)
	case DropAfter:
		rec := &discardWriter{header: http.Header{}}
		p.rp.ServeHTTP(rec, r)
		hangUp(w)
	case Latency:
		if !sleepCtx(r.Context(), delay) {
			return
		}
		p.rp.ServeHTTP(w, r)
	default:
		p.rp.ServeHTTP(w, r)
	}
}

// writeS3Error answers with an S3 REST error document.
func writeS3Error(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, 1<<20))
	body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Error><Code>%s</Code><Message>%s</Message><Resource>%s</Resource><RequestId>faultproxy</RequestId></Error>`,
		code, msg, xmlEscape(r.URL.Path))
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func xmlEscape(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '<':
			out = append(out, "&lt;"...)
		case '>':
			out = append(out, "&gt;"...)
		case '&':
			out = append(out, "&amp;"...)
		default:
			out = append(out, c)
		}
	}
	return string(out)
}

// hangUp closes the client's connection without an answer.
func hangUp(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2): abort the handler, which resets the stream.
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // a reset, not an orderly close
	}
	_ = conn.Close()
}

// discardWriter is a ResponseWriter that keeps nothing.
type discardWriter struct{ header http.Header }

func (d *discardWriter) Header() http.Header         { return d.header }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
