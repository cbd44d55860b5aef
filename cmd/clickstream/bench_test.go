package main

import (
	"context"
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/lake/laketest"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// BenchmarkLocalJobTLS runs the same job on a local cluster of two workers
// with mutual TLS and in plain text: the cost of the trust boundary. The
// lake is generated (200,000 events) unless BENCH_LAKE names one, with
// BENCH_FROM and BENCH_TO (RFC 3339) as the window, e.g. a 10 M-event lake
// made by `clickstream gen | clickstream ingest --from-file -`. Compare the
// two with benchstat.
func BenchmarkLocalJobTLS(b *testing.B) {
	ctx := context.Background()
	lakeURI, from, to := os.Getenv("BENCH_LAKE"), testFrom, testTo
	if lakeURI == "" {
		src := laketest.NewFile(b)
		clustertest.WriteLake(b, src, 16, 4, clustertest.Events(1, 10000, 200000, from, to))
		lakeURI = src.URI()
	} else {
		var err error
		if from, err = time.Parse(time.RFC3339, os.Getenv("BENCH_FROM")); err != nil {
			b.Fatalf("BENCH_FROM: %v", err)
		}
		if to, err = time.Parse(time.RFC3339, os.Getenv("BENCH_TO")); err != nil {
			b.Fatalf("BENCH_TO: %v", err)
		}
	}
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"tls", true}, {"plaintext", false}} {
		b.Run(tc.name, func(b *testing.B) {
			out := laketest.NewFile(b)
			lc, err := startLocalCluster(ctx, localClusterConfig{Workers: 2, Parallelism: 1, Logger: testLogger(nil),
				LakeRoots: anyFile, OutputRoots: anyFile, TLS: tc.tls})
			if err != nil {
				b.Fatal(err)
			}
			defer lc.Close()
			c, err := lc.Dial()
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			spec := &pb.JobSpec{From: timestamppb.New(from), To: timestamppb.New(to), LakeUri: lakeURI, OutUri: out.URI()}
			var events int64
			b.ResetTimer()
			for b.Loop() {
				j, err := c.Submit(ctx, spec)
				if err != nil {
					b.Fatal(err)
				}
				if j, err = c.Wait(ctx, j.GetId(), nil); err != nil {
					b.Fatal(err)
				}
				if j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
					b.Fatalf("job %s: %s", coordinator.StateName(j.GetState()), j.GetError())
				}
				events = j.GetProgress().GetEventsRead()
			}
			b.ReportMetric(float64(events)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
