package coordinator

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

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

// envWatchFlood asks the test binary, run again as a child process, to be
// the client of BenchmarkWatchStreams: "ADDR JOB STREAMS EXTRA CONNS".
const envWatchFlood = "CLICKSTREAM_TEST_WATCH_FLOOD"

// BenchmarkWatchStreams floods a coordinator, and the etcd embedded in the
// same process, with WatchJob streams of a running job: as many as
// --max-watch-streams, then a quarter more, which must all be refused
// with RESOURCE_EXHAUSTED. The client is another process, so that the
// process measured holds only the server side. It reports what the
// coordinator's process holds per open stream once they are all open
// (heap in use, goroutine stacks, goroutines), after a garbage
// collection, and what the refused streams added in all. Streams share
// one connection ("conns=1") or each has its own, as separate clients'
// would ("conns=streams"), refused ones included, which keep their
// connections open.
func BenchmarkWatchStreams(b *testing.B) {
	for _, bc := range []struct {
		streams int
		shared  bool // one connection for all the streams
	}{{256, true}, {256, false}, {1024, true}, {1024, false}} {
		conns := "streams"
		if bc.shared {
			conns = "1"
		}
		b.Run(fmt.Sprintf("streams=%d/conns=%s", bc.streams, conns), func(b *testing.B) {
			h := newHarness(b, 4, 50, 1000)
			h.worker("a", 4, hang)
			c := h.coordinator(func(cfg *Config) { cfg.Limits.MaxWatchStreams = bc.streams })
			j, err := h.client(c).Submit(context.Background(), h.spec())
			if err != nil {
				b.Fatal(err)
			}
			extra := bc.streams / 4
			nconns := bc.streams + extra
			if bc.shared {
				nconns = 1
			}
			var perStream, stackPerStream, goroutines, refusedHeap, total float64
			for range b.N {
				before := inUse()
				flood := startWatchFlood(b, fmt.Sprintf("%s %s %d %d %d", c.Addr(), j.GetId(), bc.streams, extra, nconns))
				flood.expect("open")
				open := inUse()
				if n := c.watches.Load(); n != int64(bc.streams) {
					b.Fatalf("%d streams counted, want %d", n, bc.streams)
				}
				flood.expect(fmt.Sprintf("refused %d", extra))
				flooded := inUse()
				flood.stop()
				perStream += float64(open.heap-before.heap) / float64(bc.streams)
				stackPerStream += float64(open.stack-before.stack) / float64(bc.streams)
				goroutines += float64(open.goroutines-before.goroutines) / float64(bc.streams)
				refusedHeap += float64(flooded.heap+flooded.stack) - float64(open.heap+open.stack)
				total += float64(open.heap+open.stack) - float64(before.heap+before.stack)
				waitUntil(b, "the streams closed", 30*time.Second, func() bool { return c.watches.Load() == 0 })
			}
			n := float64(b.N)
			b.ReportMetric(perStream/n, "heap-B/stream")
			b.ReportMetric(stackPerStream/n, "stack-B/stream")
			b.ReportMetric(goroutines/n, "goroutines/stream")
			b.ReportMetric(total/n/(1<<20), "MiB-open")
			b.ReportMetric(refusedHeap/n/(1<<20), "MiB-refused")
		})
	}
}

// memory is what the process holds in use after a garbage collection.
type memory struct {
	heap, stack uint64
	goroutines  int
}

func inUse() memory {
	var ms runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return memory{heap: ms.HeapInuse, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

// watchFlood is the client process of BenchmarkWatchStreams.
type watchFlood struct {
	b     testing.TB
	cmd   *exec.Cmd
	stdin io.Closer
	lines *bufio.Scanner
}

func startWatchFlood(b testing.TB, spec string) *watchFlood {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestWatchFloodClient$", "-test.count=1")
	cmd.Env = append(os.Environ(), envWatchFlood+"="+spec)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	f := &watchFlood{b: b, cmd: cmd, stdin: stdin, lines: bufio.NewScanner(stdout)}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return f
}

// expect reads the client's lines until want.
func (f *watchFlood) expect(want string) {
	f.b.Helper()
	for f.lines.Scan() {
		if line := f.lines.Text(); line == want {
			return
		} else if strings.HasPrefix(line, "error") || strings.HasPrefix(line, "refused") {
			f.b.Fatalf("watch client: %s, want %s", line, want)
		}
	}
	f.b.Fatalf("watch client ended before %q: %v", want, f.lines.Err())
}

// stop tells the client to close its streams, and waits for it.
func (f *watchFlood) stop() {
	f.b.Helper()
	f.stdin.Close()
	if err := f.cmd.Wait(); err != nil {
		f.b.Fatalf("watch client: %v", err)
	}
}

// TestWatchFloodClient is BenchmarkWatchStreams's client: run as a child
// process, it opens the streams, waits for the first status on each,
// prints "open", opens the extra streams, prints "refused N" if all N were
// refused with RESOURCE_EXHAUSTED, and holds everything open until its
// standard input closes.
func TestWatchFloodClient(t *testing.T) {
	spec := os.Getenv(envWatchFlood)
	if spec == "" {
		t.Skip("the client process of BenchmarkWatchStreams")
	}
	var addr, job string
	var streams, extra, nconns int
	if _, err := fmt.Sscan(spec, &addr, &job, &streams, &extra, &nconns); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	conns := make([]*grpc.ClientConn, nconns)
	for i := range conns {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		conns[i] = cc
	}
	// Stream i goes on connection i mod nconns: with streams+extra
	// connections, each stream has its own.
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	open := func(i int) error {
		api := pb.NewCoordinatorServiceClient(conns[i%nconns])
		st, err := api.WatchJob(ctx, &pb.WatchJobRequest{Id: job})
		if err != nil {
			return err
		}
		if _, err := st.Recv(); err != nil {
			return err
		}
		wg.Add(1)
		go func() { // drain updates until the end
			defer wg.Done()
			for {
				if _, err := st.Recv(); err != nil {
					return
				}
			}
		}()
		return nil
	}
	for i := range streams {
		if err := open(i); err != nil {
			fmt.Printf("error opening stream %d: %v\n", i, err)
			return
		}
	}
	fmt.Println("open")
	refused := 0
	for i := range extra {
		err := open(streams + i)
		if status.Code(err) != codes.ResourceExhausted || !strings.Contains(err.Error(), "--max-watch-streams") {
			fmt.Printf("error: extra stream %d: %v, want RESOURCE_EXHAUSTED\n", i, err)
			return
		}
		refused++
	}
	fmt.Printf("refused %d\n", refused)
	_, _ = io.Copy(io.Discard, os.Stdin)
}
