package coordinator

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/cluster"
	"github.com/dataco/clickstream/internal/cluster/clustertest"
	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/results"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// countingKV counts the etcd requests going through it.
type countingKV struct {
	clientv3.KV
	gets, puts, deletes, txns atomic.Int64
}

func (k *countingKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	k.gets.Add(1)
	return k.KV.Get(ctx, key, opts...)
}

func (k *countingKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	k.puts.Add(1)
	return k.KV.Put(ctx, key, val, opts...)
}

func (k *countingKV) Delete(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.DeleteResponse, error) {
	k.deletes.Add(1)
	return k.KV.Delete(ctx, key, opts...)
}

func (k *countingKV) Txn(ctx context.Context) clientv3.Txn {
	k.txns.Add(1)
	return k.KV.Txn(ctx)
}

// BenchmarkEtcdOpsPerTask runs whole jobs and counts the etcd requests of
// the leading coordinator per task (its API is not used: the benchmark
// submits and follows jobs with its own client). Expect 2 transactions per
// task (lease + start, done + lease deletion) plus a handful per job.
func BenchmarkEtcdOpsPerTask(b *testing.B) {
	for _, buckets := range []int{8, 64} {
		b.Run(fmt.Sprintf("tasks=%d", buckets), func(b *testing.B) {
			h := newHarness(b, buckets, 4*buckets, 20*buckets)
			for i := range 4 {
				h.worker(fmt.Sprintf("w%d", i), 4, nil)
			}
			cli, err := cluster.Dial(context.Background(), h.endpoints, cluster.EtcdAuth{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { cli.Close() })
			kv := &countingKV{KV: cli.KV}
			cli.KV = kv
			cfg := NewConfig()
			cfg.Listen, cfg.Etcd, cfg.EtcdPrefix, cfg.Lake, cfg.Runner = "127.0.0.1:0", strings.Join(h.endpoints, ","), h.prefix, h.src.URI(), h.runner
			cfg.BackupAfter = -1
			c, err := New(cfg, cli, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			if err := c.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { c.Close() })
			waitUntil(b, "leadership", 10*time.Second, c.IsLeader)
			// Submit as a client would, through another coordinator's API.
			api := h.coordinator(nil)
			cl := h.client(api)
			h.run(cl, h.spec()) // warm up
			before := [4]int64{kv.gets.Load(), kv.puts.Load(), kv.deletes.Load(), kv.txns.Load()}
			b.ResetTimer()
			for range b.N {
				if j := h.run(cl, h.spec()); j.GetState() != pb.JobState_JOB_STATE_SUCCEEDED {
					b.Fatalf("job %s: %s", j.GetState(), j.GetError())
				}
			}
			b.StopTimer()
			tasks := float64(b.N * buckets)
			b.ReportMetric(float64(kv.txns.Load()-before[3])/tasks, "txns/task")
			b.ReportMetric(float64(kv.gets.Load()-before[0])/tasks, "gets/task")
			b.ReportMetric(float64(kv.puts.Load()-before[1]+kv.deletes.Load()-before[2])/tasks, "puts+dels/task")
		})
	}
}

// BenchmarkMerge measures the leader's merge cost per partial: reading
// partials from a file store, decoding and merging them ("store"), and
// decoding and merging alone ("memory").
func BenchmarkMerge(b *testing.B) {
	const buckets, users, events = 32, 20000, 400000
	evs := clustertest.Events(5, users, events, tFrom, tTo)
	byBucket := make([][]event.Event, buckets)
	for _, e := range evs {
		k := lake.Bucket(e.UserID, buckets)
		byBucket[k] = append(byBucket[k], e)
	}
	w := aggregate.Window{From: tFrom, To: tTo}
	out := laketest.NewFile(b)
	p := &plan{Version: planVersion, Job: "bench"}
	encoded := make([][]byte, buckets)
	digests := make([]partialDigest, buckets)
	var size int
	for k := range buckets {
		data, err := aggregate.Compute(byBucket[k], w, 30*time.Minute).MarshalBinary()
		if err != nil {
			b.Fatal(err)
		}
		encoded[k] = data
		digests[k] = partialDigest{sha256: sha256.Sum256(data), bytes: int64(len(data))}
		size += len(data)
		if err := out.Put(context.Background(), results.PartialKey("bench", k), data); err != nil {
			b.Fatal(err)
		}
		p.Tasks = append(p.Tasks, planTask{Task: k, Bucket: k})
	}
	c := &Coordinator{cfg: NewConfig()}
	b.Run("store", func(b *testing.B) {
		b.SetBytes(int64(size))
		for range b.N {
			if _, err := c.mergePartials(context.Background(), out, "bench", p, digests); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*buckets), "ns/partial")
	})
	b.Run("memory", func(b *testing.B) {
		b.SetBytes(int64(size))
		for range b.N {
			total := aggregate.NewPartial()
			for _, data := range encoded {
				q := aggregate.NewPartial()
				if err := q.UnmarshalBinary(data); err != nil {
					b.Fatal(err)
				}
				total.Merge(q)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*buckets), "ns/partial")
	})
}
