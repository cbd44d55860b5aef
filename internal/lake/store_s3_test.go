package lake_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"sync/atomic"
	"testing"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
)

func TestS3Store(t *testing.T) {
	testStore(t, laketest.NewS3(t))
}

func TestS3EnsureBucketIdempotent(t *testing.T) {
	s := laketest.NewS3Store(t)
	for range 2 {
		if err := s.EnsureBucket(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
}

func TestS3OpenPrefix(t *testing.T) {
	ctx := context.Background()
	root := laketest.NewS3Store(t)
	uri := "s3://" + root.Bucket() + "/lake/one/"
	s, err := lake.Open(ctx, uri, laketest.S3Options())
	if err != nil {
		t.Fatal(err)
	}
	if want := "s3://" + root.Bucket() + "/lake/one"; s.URI() != want {
		t.Errorf("URI = %q, want %q", s.URI(), want)
	}
	mustPut(t, s, "events/x", "x")
	if got := mustGet(t, root, "lake/one/events/x"); got != "x" {
		t.Fatalf("bucket root Get = %q", got)
	}
	// A sibling prefix sharing the first letters is not listed.
	mustPut(t, root, "lake/onex/y", "y")
	objs, err := s.List(ctx, "")
	if err != nil || len(objs) != 1 || objs[0].Key != "events/x" {
		t.Fatalf("List = %q, %v; want [events/x]", keysOf(objs), err)
	}
}

func TestS3MissingBucket(t *testing.T) {
	root := laketest.NewS3Store(t)
	s, err := lake.NewS3Store(context.Background(), root.Bucket()+"-nope", "", lake.S3Options{Endpoint: os.Getenv(lake.EnvS3Endpoint), MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(context.Background(), "k"); err == nil || errors.Is(err, lake.ErrNotExist) {
		t.Fatalf("Get on a missing bucket error = %v, want an error other than ErrNotExist", err)
	}
}

// TestS3PutIfAbsentLostResponse drops the response of the first
// conditional PUT after the server applied it, as a network failure would.
// The retry then meets 412; PutIfAbsent must see that the object is its own
// and succeed, while a different writer still gets ErrExists.
func TestS3PutIfAbsentLostResponse(t *testing.T) {
	ctx := context.Background()
	root := laketest.NewS3Store(t)
	upstream, err := url.Parse(os.Getenv(lake.EnvS3Endpoint))
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(upstream)
	var dropped atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.Header.Get("If-None-Match") == "*" && dropped.Add(1) == 1 {
			proxy.ServeHTTP(httptest.NewRecorder(), r)
			panic(http.ErrAbortHandler) // close the connection unanswered
		}
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	s, err := lake.NewS3Store(ctx, root.Bucket(), "", lake.S3Options{Endpoint: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"writer":"a"}`)
	if err := s.PutIfAbsent(ctx, "m/1", body); err != nil {
		t.Fatalf("PutIfAbsent with a lost response: %v", err)
	}
	if n := dropped.Load(); n < 2 {
		t.Fatalf("%d conditional PUTs reached the proxy, want a retry after the dropped one", n)
	}
	if got, err := root.Get(ctx, "m/1"); err != nil || !bytes.Equal(got, body) {
		t.Fatalf("stored %q, %v", got, err)
	}
	if err := s.PutIfAbsent(ctx, "m/1", []byte(`{"writer":"b"}`)); !errors.Is(err, lake.ErrExists) {
		t.Fatalf("other writer error = %v, want ErrExists", err)
	}

	// Lost response, and the object is someone else's: ErrExists.
	dropped.Store(0)
	if err := root.Put(ctx, "m/2", []byte("other")); err != nil {
		t.Fatal(err)
	}
	err = s.PutIfAbsent(ctx, "m/2", body)
	if !errors.Is(err, lake.ErrExists) {
		t.Fatalf("PutIfAbsent on a taken key error = %v, want ErrExists", err)
	}
}
