package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/dataco/clickstream/internal/lake"
	"github.com/dataco/clickstream/internal/lake/laketest"
	"github.com/dataco/clickstream/internal/obs"
)

// BenchmarkKafkaToLake measures, in one run and side by side, the rate at
// which ingest moves a topic into the lake and the rate at which the same
// client (a sarama consumer group with ingest's settings) merely consumes it:
// the ceiling. The ratio is the figure of merit.
//
//	make bench   or   go test -run '^$' -bench KafkaToLake -benchtime 3x ./ingest/
func BenchmarkKafkaToLake(b *testing.B) {
	brokers := os.Getenv("CLICKSTREAM_KAFKA_BROKERS")
	if brokers == "" {
		b.Fatal("CLICKSTREAM_KAFKA_BROKERS is not set: run 'make dev-up' and source its env file, or 'make bench'")
	}
	events := 2_000_000
	if s := os.Getenv("CLICKSTREAM_BENCH_EVENTS"); s != "" {
		fmt.Sscan(s, &events)
	}
	bl := strings.Split(brokers, ",")
	topic := fmt.Sprintf("bench-ingest-%d", time.Now().UnixNano())
	sc := sarama.NewConfig()
	sc.Version = sarama.V3_6_0_0
	admin, err := sarama.NewClusterAdmin(bl, sc)
	if err != nil {
		b.Fatal(err)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 4, ReplicationFactor: 1}, false); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = admin.DeleteTopic(topic); admin.Close() })
	out, err := exec.Command("go", "run", "github.com/dataco/clickstream/cmd/clickstream", "gen",
		"--brokers", brokers, "--topic", topic, "--events", fmt.Sprint(events), "--seed", "5",
		// Traffic of a busy site: many users, so an hour holds ~1M events
		// and a batch touches one or two hours, as in a real-time stream.
		"--users", "300000").CombinedOutput()
	if err != nil {
		b.Fatalf("gen: %v\n%s", err, out)
	}

	for _, kind := range []string{"s3", "file"} {
		b.Run(kind, func(b *testing.B) {
			var consumeSecs, ingestSecs, consumeCPU, ingestCPU float64
			for i := 0; i < b.N; i++ {
				cpu0 := processCPU(b)
				consumeSecs += consumeOnly(b, bl, topic, int64(events)).Seconds()
				cpu1 := processCPU(b)
				consumeCPU += cpu1 - cpu0
				var store lake.Store
				if kind == "s3" {
					store = laketest.NewS3(b)
				} else {
					store = laketest.NewFile(b)
				}
				cpu2 := processCPU(b)
				ingestSecs += ingestAll(b, bl, topic, store, int64(events)).Seconds()
				ingestCPU += processCPU(b) - cpu2
			}
			ceiling := float64(events*b.N) / consumeSecs
			rate := float64(events*b.N) / ingestSecs
			b.ReportMetric(ceiling, "consume_events/s")
			b.ReportMetric(rate, "lake_events/s")
			b.ReportMetric(rate/ceiling, "ratio")
			// CPU seconds of this process per second of each phase: how
			// much of the machine each side used (the broker's share is not
			// counted).
			b.ReportMetric(consumeCPU/consumeSecs, "consume_cores")
			b.ReportMetric(ingestCPU/ingestSecs, "lake_cores")
			// CPU time per event: steadier than the rates on a shared
			// machine, and what the ratio comes down to when CPU-bound.
			b.ReportMetric(consumeCPU*1e6/float64(events*b.N), "consume_cpu_us/event")
			b.ReportMetric(ingestCPU*1e6/float64(events*b.N), "lake_cpu_us/event")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// consumeOnly reads the whole topic through a fresh consumer group with
// ingest's client settings and does nothing with the records.
func consumeOnly(b *testing.B, brokers []string, topic string, want int64) time.Duration {
	b.Helper()
	cfg := NewConfig()
	sc, err := newSaramaConfig(&cfg)
	if err != nil {
		b.Fatal(err)
	}
	group, err := sarama.NewConsumerGroup(brokers, fmt.Sprintf("bench-consume-%d", time.Now().UnixNano()), sc)
	if err != nil {
		b.Fatal(err)
	}
	defer group.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	h := &countingHandler{want: want, done: cancel}
	start := time.Now()
	for ctx.Err() == nil {
		if err := group.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
			b.Fatal(err)
		}
	}
	if h.n.Load() < want {
		b.Fatalf("consumed %d of %d", h.n.Load(), want)
	}
	return time.Since(start)
}

type countingHandler struct {
	n    atomic.Int64
	want int64
	done func()
}

func (h *countingHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *countingHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *countingHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	var bytes int
	for msg := range claim.Messages() {
		bytes += len(msg.Value)
		if h.n.Add(1) == h.want {
			h.done()
		}
	}
	_ = bytes
	return nil
}

// ingestAll runs ingest until the lake holds the whole topic.
func ingestAll(b *testing.B, brokers []string, topic string, store lake.Store, want int64) time.Duration {
	b.Helper()
	cfg := NewConfig()
	cfg.Brokers, cfg.Topic, cfg.Group, cfg.Lake = brokers, topic, fmt.Sprintf("bench-ingest-%d", time.Now().UnixNano()), store.URI()
	cfg.S3 = laketest.S3Options()
	// Size-based flushes as in production; a short interval so that the tail
	// of the topic does not wait for the default 10 s timer.
	cfg.FlushInterval = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	// Progress is read from ingest's own metrics, in process: polling the
	// lake would load the S3 server and this process while they are being
	// measured. The lake is checked once at the end.
	reg := prometheus.NewRegistry()
	done := make(chan error, 1)
	start := time.Now()
	go func() {
		_, err := Ingest(ctx, cfg, obs.Runtime{Registerer: reg})
		done <- err
	}()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	var elapsed time.Duration
	for elapsed == 0 {
		select {
		case err := <-done:
			b.Fatalf("ingest stopped early: %v", err)
		case <-t.C:
		}
		if committedRecords(b, reg) >= want {
			elapsed = time.Since(start)
		}
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	if got := committedEnd(context.Background(), store); got != want {
		b.Fatalf("the lake's manifests cover %d records, want %d", got, want)
	}
	return elapsed
}

// committedRecords sums the events and rejected records ingest has
// committed, from its metrics.
func committedRecords(b *testing.B, reg *prometheus.Registry) int64 {
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	var n float64
	for _, mf := range mfs {
		switch mf.GetName() {
		case "clickstream_ingest_events_written_total", "clickstream_ingest_records_rejected_total":
			for _, m := range mf.GetMetric() {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return int64(n)
}

// processCPU returns the user and system CPU time this process has used,
// in seconds.
func processCPU(b *testing.B) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// committedEnd sums the committed end positions of every source, from the
// watermark records.
func committedEnd(ctx context.Context, store lake.Store) int64 {
	objs, err := store.List(ctx, lake.WatermarksPrefix)
	if err != nil {
		return 0
	}
	var n int64
	for _, o := range objs {
		data, err := store.Get(ctx, o.Key)
		if err != nil {
			return 0
		}
		var w lake.Watermark
		if json.Unmarshal(data, &w) != nil {
			return 0
		}
		n += w.End
	}
	return n
}
