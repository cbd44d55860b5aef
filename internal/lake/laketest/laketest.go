// Package laketest gives tests of any package a fresh lake.Store: a
// t.TempDir() file store, or a randomly named bucket on the S3-compatible
// server named by $CLICKSTREAM_S3_ENDPOINT (started by `make dev-up`).
package laketest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/parquet-go/parquet-go"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
)

// NewFile returns a file store in a fresh temporary folder.
func NewFile(t testing.TB) lake.Store {
	t.Helper()
	s, err := lake.NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// NewS3 returns a store on a new, randomly named bucket of the server at
// $CLICKSTREAM_S3_ENDPOINT, with credentials from the standard AWS
// variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY). The bucket and
// everything in it are removed when the test ends.
//
// Under `go test -short` the test is skipped. Otherwise a missing endpoint
// fails the test: S3 tests are never skipped silently.
func NewS3(t testing.TB) lake.Store {
	t.Helper()
	return NewS3Store(t)
}

// S3Options are the options of the test S3 server: its endpoint from
// $CLICKSTREAM_S3_ENDPOINT (empty if unset: AWS's own).
func S3Options() lake.S3Options {
	return lake.S3Options{Endpoint: os.Getenv(lake.EnvS3Endpoint)}
}

// NewS3Store is NewS3 returning the concrete store, for tests that need its
// client.
func NewS3Store(t testing.TB) *lake.S3Store {
	t.Helper()
	if testing.Short() {
		t.Skip("S3 test skipped in -short mode")
	}
	endpoint := os.Getenv(lake.EnvS3Endpoint)
	if endpoint == "" {
		t.Fatalf("$%s is not set: run `make dev-up` to start a local S3 (versitygw) and export %s, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for it; or use go test -short to skip S3 tests", lake.EnvS3Endpoint, lake.EnvS3Endpoint)
	}
	if os.Getenv("AWS_ACCESS_KEY_ID") == "" || os.Getenv("AWS_SECRET_ACCESS_KEY") == "" {
		t.Fatalf("$%s is set but AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is not: export the credentials of the S3 server that `make dev-up` starts", lake.EnvS3Endpoint)
	}
	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	bucket := "clickstream-test-" + hex.EncodeToString(rnd[:])

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := lake.NewS3Store(ctx, bucket, "", lake.S3Options{Endpoint: endpoint})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucket(ctx); err != nil {
		t.Fatalf("creating test bucket on %s: %v", endpoint, err)
	}
	t.Cleanup(func() { removeBucket(t, s.Client(), bucket) })
	return s
}

// removeBucket deletes every object of bucket, then the bucket.
func removeBucket(t testing.TB, c *s3.Client, bucket string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Errorf("cleanup: listing bucket %s: %v", bucket, err)
			return
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			ids[i] = types.ObjectIdentifier{Key: o.Key}
		}
		out, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{
			Bucket: aws.String(bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)},
		})
		if err != nil {
			t.Errorf("cleanup: deleting objects of bucket %s: %v", bucket, err)
			return
		}
		if len(out.Errors) > 0 {
			t.Errorf("cleanup: deleting objects of bucket %s: %d errors, first: %s", bucket, len(out.Errors), aws.ToString(out.Errors[0].Message))
			return
		}
	}
	if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(bucket)}); err != nil {
		t.Errorf("cleanup: deleting bucket %s: %v", bucket, err)
	}
}

// LayoutOneFile returns a Parquet data file of lake layout 1 (a
// timestamp_ms column, no field ids) holding one event at
// epoch-millisecond ts (user "u"): what an old lake holds, for tests that it is
// refused.
func LayoutOneFile(t testing.TB, ts int64) []byte {
	t.Helper()
	return LayoutOneEvents(t, []event.Event{{UserID: "u", Timestamp: ts, URL: "/", Country: "DE"}})
}

// LayoutOneEvents returns a Parquet data file of lake layout 1 holding
// events, in order.
func LayoutOneEvents(t testing.TB, events []event.Event) []byte {
	t.Helper()
	type oldEvent struct {
		UserID    string `parquet:"user_id,dict"`
		Timestamp int64  `parquet:"timestamp_ms"`
		URL       string `parquet:"url,dict"`
		Country   string `parquet:"country,dict"`
		City      string `parquet:"city,dict"`
		UserAgent string `parquet:"user_agent,dict"`
	}
	rows := make([]oldEvent, len(events))
	for i, e := range events {
		rows[i] = oldEvent{e.UserID, e.Timestamp, e.URL, e.Country, e.City, e.UserAgent}
	}
	var buf bytes.Buffer
	w := parquet.NewGenericWriter[oldEvent](&buf)
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
