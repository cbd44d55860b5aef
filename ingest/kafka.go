package ingest

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"

	"github.com/dataco/clickstream/internal/kafkaauth"
	"github.com/dataco/clickstream/internal/lake"
)

// kafkaSource consumes a topic through a sarama consumer group. Each claimed
// partition is one lake source, consumed into the lake by a
// partitionConsumer for as long as the claim lasts.
type kafkaSource struct {
	cfg    *Config
	sink   *sink
	client sarama.Client

	mu     sync.Mutex
	states map[int32]*sourceState // recovered in Setup, per claimed partition

	lastRecord atomic.Int64 // unix nanos of the last record received
	totals     totals
	// committed sums the commits of every partition for the summary:
	// rejects by reason and the event-time range; guarded by sumMu.
	sumMu     sync.Mutex
	committed Summary
	gaps      map[int32]int64 // per partition, the offset up to which a retention gap was reported
}

// totals counts what a process committed.
type totals struct {
	consumed, valid, rejected atomic.Int64
}

// newSaramaConfig is the consumer's configuration, with the TLS and SASL
// settings of cfg.Kafka (reading its files).
func newSaramaConfig(cfg *Config) (*sarama.Config, error) {
	sc := sarama.NewConfig()
	sc.Consumer.Group.InstanceId = cfg.InstanceID
	sc.Consumer.Group.Session.Timeout = cfg.SessionTimeout
	sc.Consumer.Group.Heartbeat.Interval = cfg.SessionTimeout / 4
	sc.ClientID = "clickstream-ingest"
	sc.Version = sarama.V3_6_0_0
	sc.Consumer.Return.Errors = true
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	// Offsets committed to Kafka are advisory (for lag tooling): on every
	// assignment the position is recovered from the lake's manifests.
	sc.Consumer.Offsets.AutoCommit.Enable = true
	sc.Consumer.Offsets.AutoCommit.Interval = time.Second
	sc.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{sarama.NewBalanceStrategySticky()}
	sc.Consumer.Fetch.Default = 4 << 20
	sc.ChannelBufferSize = 1024
	if err := cfg.Kafka.Apply(sc); err != nil {
		return nil, fmt.Errorf("ingest: %w", err)
	}
	return sc, nil
}

// Setup runs at the start of every group session, before any ConsumeClaim:
// it recovers each claimed partition's position from the lake and moves the
// session's offset there, backwards if need be.
func (k *kafkaSource) Setup(sess sarama.ConsumerGroupSession) error {
	ctx := sess.Context()
	states := make(map[int32]*sourceState)
	for topic, parts := range sess.Claims() {
		for _, p := range parts {
			st, err := k.sink.recover(ctx, lake.KafkaSource(topic, p))
			if err != nil {
				return err
			}
			oldest, err := k.client.GetOffset(topic, p, sarama.OffsetOldest)
			if err != nil {
				return fmt.Errorf("ingest: oldest offset of %s/%d: %w", topic, p, err)
			}
			if st.seq == 0 {
				st.end = oldest // never committed: start at the oldest retained record
			} else if st.end < oldest {
				k.retentionGap(topic, p, st.end, oldest)
			}
			sess.ResetOffset(topic, p, max(st.end, oldest), "")
			states[p] = &st
			k.sink.log.Info("partition assigned", "topic", topic, "partition", p,
				"resume_offset", st.end, "last_seq", st.seq, "generation", sess.GenerationID())
		}
	}
	k.mu.Lock()
	k.states = states
	k.mu.Unlock()
	k.sink.consuming.Store(true) // joined; stays so across rebalances
	return nil
}

// retentionGap reports that Kafka no longer holds [end, oldest) of a
// partition although the lake never got it: records lost upstream, to
// retention, while ingest was behind or down. The partition goes on from
// oldest; its next manifest covers the gap, as it covers offsets compaction removed.
// Each lost record is counted once per process, however often the
// partition is assigned before the next commit.
func (k *kafkaSource) retentionGap(topic string, p int32, end, oldest int64) {
	k.mu.Lock()
	if k.gaps == nil {
		k.gaps = make(map[int32]int64)
	}
	from := max(end, k.gaps[p])
	k.gaps[p] = max(k.gaps[p], oldest)
	k.mu.Unlock()
	if from >= oldest {
		return
	}
	k.sink.log.Error("records expired from Kafka before they reached the lake",
		"topic", topic, "partition", p, "lake_end", end, "oldest_retained", oldest, "lost", oldest-from)
	k.sink.metrics.retentionGap.WithLabelValues(topic, strconv.Itoa(int(p))).Add(float64(oldest - from))
}

// Cleanup runs after every ConsumeClaim of the session has returned.
func (k *kafkaSource) Cleanup(sess sarama.ConsumerGroupSession) error { return nil }

// ConsumeClaim consumes one claimed partition into the lake through a
// partitionConsumer, which batches its records and commits them by size, by
// time, and when the claim ends (rebalance or shutdown). It returns only
// after the partition's last batch is committed or abandoned: abandoned
// records were never committed, so the partition's next owner reads them
// again from the lake's position.
func (k *kafkaSource) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	k.mu.Lock()
	st := k.states[claim.Partition()]
	k.mu.Unlock()
	if st == nil {
		return fmt.Errorf("ingest: partition %d claimed without setup", claim.Partition())
	}
	pc := k.startPartitionConsumer(sess, claim, st)
	pc.consume(claim.Messages())
	return pc.stop()
}

// runKafka consumes until ctx is done or the source has been idle for
// cfg.ExitWhenIdle.
func runKafka(ctx context.Context, cfg *Config, s *sink) (Summary, error) {
	sc, err := newSaramaConfig(cfg)
	if err != nil {
		return Summary{}, err
	}
	client, err := sarama.NewClient(cfg.Brokers, sc)
	if err != nil {
		return Summary{}, fmt.Errorf("ingest: connect to Kafka %v: %w", cfg.Brokers, kafkaauth.Explain(err))
	}
	defer client.Close()
	group, err := sarama.NewConsumerGroupFromClient(cfg.Group, client)
	if err != nil {
		return Summary{}, fmt.Errorf("ingest: consumer group %s: %w", cfg.Group, err)
	}
	k := &kafkaSource{cfg: cfg, sink: s, client: client}
	k.lastRecord.Store(time.Now().UnixNano())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	// Owned here: logs the group's asynchronous errors until the group closes.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for err := range group.Errors() {
			s.log.Warn("consumer group error", "err", err)
		}
	}()
	if cfg.ExitWhenIdle > 0 {
		// Owned here: cancels the consumer once nothing has arrived for a while.
		wg.Add(1)
		go func() {
			defer wg.Done()
			t := time.NewTicker(min(cfg.ExitWhenIdle/4, time.Second))
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if time.Since(time.Unix(0, k.lastRecord.Load())) >= cfg.ExitWhenIdle {
						s.log.Info("idle; stopping", "idle_for", cfg.ExitWhenIdle)
						cancel()
						return
					}
				}
			}
		}()
	}

	var runErr error
	for ctx.Err() == nil {
		// Consume returns at every rebalance; ConsumeClaim has committed or
		// abandoned every batch by then.
		if err := group.Consume(ctx, []string{cfg.Topic}, k); err != nil {
			if errors.Is(err, sarama.ErrClosedConsumerGroup) || ctx.Err() != nil {
				break
			}
			s.log.Warn("consumer session ended with an error; rejoining", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
	s.consuming.Store(false)
	cancel()
	if err := group.Close(); err != nil {
		runErr = fmt.Errorf("ingest: close consumer group: %w", err)
	}
	wg.Wait()
	k.sumMu.Lock()
	sum := k.committed
	k.sumMu.Unlock()
	sum.Consumed, sum.Accepted, sum.Rejected = k.totals.consumed.Load(), k.totals.valid.Load(), k.totals.rejected.Load()
	if sum.Rejected > 0 { // every partition's folder: their parent
		sum.DeadLetters = strings.TrimSuffix(s.store.URI(), "/") + "/" + lake.RejectedPrefix
	}
	return sum, runErr
}
