package indexer

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/elastic/go-elasticsearch/v8/esapi"
)

// retryStatuses are the HTTP statuses the client retries: 429 (too many
// requests, e.g. a full write queue) and 5xx. The client's own default is
// only 502, 503 and 504.
var retryStatuses = []int{429, 500, 502, 503, 504}

// StatusError is an Elasticsearch answer with an error status.
type StatusError struct {
	Status int
	Type   string // the error type, e.g. "index_not_found_exception"
	Reason string
}

func (e *StatusError) Error() string {
	if e.Type == "" {
		return fmt.Sprintf("elasticsearch: status %d: %s", e.Status, e.Reason)
	}
	return fmt.Sprintf("elasticsearch: status %d: %s: %s", e.Status, e.Type, e.Reason)
}

// newStatusError decodes an error response body: {"error": {...} or "...", "status": N}.
func newStatusError(status int, body []byte) *StatusError {
	e := &StatusError{Status: status}
	var doc struct {
		Error json.RawMessage `json:"error"`
	}
	if json.Unmarshal(body, &doc) == nil && len(doc.Error) > 0 {
		var obj struct {
			Type     string `json:"type"`
			Reason   string `json:"reason"`
			CausedBy *struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"caused_by"`
		}
		if json.Unmarshal(doc.Error, &obj) == nil && obj.Type != "" {
			e.Type, e.Reason = obj.Type, obj.Reason
			if obj.CausedBy != nil && obj.CausedBy.Reason != "" {
				e.Reason += " (caused by " + obj.CausedBy.Type + ": " + obj.CausedBy.Reason + ")"
			}
			return e
		}
		var s string
		if json.Unmarshal(doc.Error, &s) == nil {
			e.Reason = s
			return e
		}
	}
	const max = 512
	e.Reason = strings.TrimSpace(string(body[:min(len(body), max)]))
	return e
}

// retryable reports whether err may go away by itself: a network error, a
// timeout, a 408, a 429 or a 5xx. Context errors, a client-side refusal
// (closed client, not Elasticsearch) and other 4xx are not.
func retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, elasticsearch.ErrClosed) || errors.Is(err, ErrClosed) {
		return false
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.Status == 408 || se.Status == 429 || se.Status >= 500
	}
	if badCertificate(err) {
		return false
	}
	// The client reports a server that is not Elasticsearch (no
	// X-Elastic-Product header) with an unwrapped error.
	if strings.Contains(err.Error(), "not Elasticsearch") {
		return false
	}
	return true
}

// badCertificate tells whether err is a server certificate that does not
// verify (unknown authority, wrong host, expired): configuration, which
// retrying only delays.
func badCertificate(err error) bool {
	var (
		verify   *tls.CertificateVerificationError
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
	)
	return errors.As(err, &verify) || errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid)
}

// backoff returns the delay before retry attempt (1-based): exponential
// from base, capped, with "equal jitter" (half fixed, half random), so
// that clients retrying together spread out.
func backoff(attempt int, base, maxDelay time.Duration) time.Duration {
	d := base
	for i := 1; i < attempt && d < maxDelay; i++ {
		d *= 2
	}
	d = min(d, maxDelay)
	return d/2 + rand.N(d/2+1)
}

// newClient builds the Elasticsearch client: auth, TLS, timeouts, and
// retries with backoff and jitter on network errors, 429 and 5xx.
func newClient(cfg Config, onRetry func()) (*elasticsearch.Client, error) {
	apiKey, password, err := cfg.credentials()
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          100,
		MaxIdleConnsPerHost:   cfg.Workers + 4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: cfg.RequestTimeout,
		ExpectContinueTimeout: time.Second,
		TLSClientConfig:       &tls.Config{MinVersion: tls.VersionTLS12},
	}
	if cfg.CACert != "" {
		pem, err := os.ReadFile(cfg.CACert)
		if err != nil {
			return nil, fmt.Errorf("indexer: reading the CA certificate: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("indexer: no PEM certificate in %s", cfg.CACert)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	c, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses:     cfg.Addresses,
		Username:      cfg.Username,
		Password:      password,
		APIKey:        apiKey,
		Transport:     tr,
		RetryOnStatus: retryStatuses,
		MaxRetries:    cfg.MaxRetries,
		DisableRetry:  cfg.MaxRetries == 0,
		RetryOnError: func(_ *http.Request, err error) bool {
			return !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !badCertificate(err)
		},
		RetryBackoff: func(attempt int) time.Duration {
			if onRetry != nil {
				onRetry()
			}
			return backoff(attempt, 100*time.Millisecond, 5*time.Second)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("indexer: elasticsearch client: %w", err)
	}
	return c, nil
}

// statusTransport turns every error response of the wrapped transport
// into a *StatusError. The bulk indexer wraps the error of a failed flush
// with %w, so the per-item failure callbacks can tell a refused request
// (401, 413...) from a transient failure.
type statusTransport struct{ next esapi.Transport }

func (t statusTransport) Perform(req *http.Request) (*http.Response, error) {
	res, err := t.next.Perform(req)
	if err != nil || res.StatusCode < 300 {
		return res, err
	}
	body, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	res.Body.Close()
	return nil, newStatusError(res.StatusCode, body)
}

// call performs req and returns the response body. A status outside 2xx
// and ok is a *StatusError; the status is returned either way.
func call(ctx context.Context, c esapi.Transport, req esapi.Request, ok ...int) ([]byte, int, error) {
	res, err := req.Do(ctx, c)
	if err != nil {
		return nil, 0, err
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		return nil, res.StatusCode, fmt.Errorf("elasticsearch: reading the response: %w", err)
	}
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return body, res.StatusCode, nil
	}
	for _, s := range ok {
		if res.StatusCode == s {
			return body, res.StatusCode, nil
		}
	}
	return body, res.StatusCode, newStatusError(res.StatusCode, body)
}

// callRetry is call with retries of retryable errors (beyond the client's
// own), until deadline. build makes a fresh request for each attempt.
func (ix *Indexer) callRetry(ctx context.Context, what string, deadline time.Time, build func() esapi.Request, ok ...int) ([]byte, int, error) {
	for attempt := 1; ; attempt++ {
		body, status, err := call(ctx, ix.client, build(), ok...)
		if err == nil || !retryable(err) {
			if err != nil {
				err = fmt.Errorf("indexer: %s: %w", what, err)
			}
			return body, status, err
		}
		wait := backoff(attempt, 500*time.Millisecond, 15*time.Second)
		if time.Now().Add(wait).After(deadline) {
			return body, status, fmt.Errorf("%w: %s: %w", ErrRetriesExhausted, what, err)
		}
		ix.logger.Warn("elasticsearch request failed, retrying", "op", what, "attempt", attempt, "wait", wait, "err", err)
		if err := sleep(ctx, wait); err != nil {
			return nil, 0, fmt.Errorf("indexer: %s: %w", what, err)
		}
	}
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// jsonBody encodes v as a request body.
func jsonBody(v any) io.Reader {
	data, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("indexer: encoding a request body: %v", err)) // only static shapes are encoded
	}
	return bytes.NewReader(data)
}
