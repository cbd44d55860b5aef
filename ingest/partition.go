package ingest

import (
	"context"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
)

// A partitionConsumer consumes one claimed Kafka partition into the lake for
// one group session. Two goroutines share it:
//
//   - the consuming goroutine (sarama's, running ConsumeClaim) fills the
//     current batch from the claim's messages and hands it over when it is
//     full (committer.full) or, if it holds anything, when the flush
//     interval ticks;
//   - the commit goroutine, which the consumer owns, commits the batches
//     handed over through the partition's committer while the next batch
//     fills: consuming and parsing overlap encoding and uploading.
//
// Invariants:
//   - The partition's offset is marked only after the manifest naming the
//     batch is durable, and only up to that manifest's end (markCommitted).
//   - Batches are committed one at a time, in the order they were filled.
//     Once a commit has failed, nothing handed over after it is committed
//     and nothing more is handed over: the session ends, and the
//     partition's next owner resumes from the lake's position.
//   - There are two batches. The consuming goroutine holds one (cur); the
//     other is queued, being committed, or free. A hand-over waits while
//     the previous batch is still being committed.
//   - Its owner starts it (startPartitionConsumer), runs consume, and calls
//     stop, which hands over the last batch, closes batches (the commit
//     goroutine's quit signal) and waits for done.
type partitionConsumer struct {
	src      *kafkaSource // the totals and last-record time it adds to
	sess     sarama.ConsumerGroupSession
	claim    sarama.ConsumerGroupClaim
	lag      prometheus.Gauge
	interval time.Duration // at each tick of it, a batch holding records is handed over
	grace    time.Duration // how long stop waits for commits after the session has ended

	// Owned by the consuming goroutine.
	cur    *batch      // the batch being filled
	pcache *parseCache // shares the strings of the records' repeated fields, remembers bot verdicts

	// Used by the commit goroutine; the consuming goroutine only calls its
	// full, which reads nothing a commit changes.
	commits *committer

	batches       chan *batch           // handed over, in order; closing it tells the commit goroutine to quit
	free          chan *batch           // committed or dropped, back to the consuming goroutine; room for both
	done          chan struct{}         // closed when the commit goroutine has returned
	failure       atomic.Pointer[error] // the commit that failed, if one did
	cancelCommits context.CancelFunc    // abandons the commit in flight
}

// stopGrace is how long a partition consumer's last commits may take once
// its session has ended.
const stopGrace = 2 * time.Minute

// drainMax is the most records a partition consumer takes from the claim's
// channel between two looks at its timer and its session.
const drainMax = 4096

// startPartitionConsumer returns the consumer of claim's partition, whose
// committed state in the lake is st, and starts its commit goroutine: st
// belongs to that goroutine from here on. The caller must call stop.
func (k *kafkaSource) startPartitionConsumer(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim, st *sourceState) *partitionConsumer {
	pc := &partitionConsumer{
		src:      k,
		sess:     sess,
		claim:    claim,
		lag:      k.sink.metrics.lag.WithLabelValues(claim.Topic(), strconv.Itoa(int(claim.Partition()))),
		interval: k.cfg.FlushInterval,
		grace:    stopGrace,
		cur:      &batch{},
		pcache:   k.sink.newParseCache(),
		batches:  make(chan *batch, 1),
		free:     make(chan *batch, 2),
		done:     make(chan struct{}),
	}
	pc.commits = newCommitter(k.sink, k.cfg, st, pc.markCommitted)
	pc.cur.reset(st.end)
	pc.free <- &batch{}
	// The commits' context outlives the session's cancellation for the
	// final drain: that is what makes a SIGTERM lose nothing. stop bounds
	// it.
	ctx, cancel := context.WithCancel(context.WithoutCancel(sess.Context()))
	pc.cancelCommits = cancel
	go pc.commitLoop(ctx)
	return pc
}

// consume fills batches from msgs and hands them over until msgs is
// closed, the session ends, or a commit has failed.
func (pc *partitionConsumer) consume(msgs <-chan *sarama.ConsumerMessage) {
	ticker := time.NewTicker(pc.interval)
	defer ticker.Stop()
	for {
		select {
		case msg, ok := <-msgs:
			if !ok || !pc.addBuffered(msg, msgs) {
				return
			}
		case <-ticker.C:
			if pc.commitErr() != nil {
				return // end the session: the partition resumes from the lake
			}
			if pc.cur.len() > 0 {
				if err := pc.handOver(); err != nil {
					return
				}
			}
		case <-pc.sess.Context().Done():
			return
		}
	}
}

// addBuffered adds msg and the messages already buffered behind it, up to
// drainMax, without a select per record, and accounts for them once. It
// reports whether to go on: false once msgs is closed or a commit has
// failed.
func (pc *partitionConsumer) addBuffered(msg *sarama.ConsumerMessage, msgs <-chan *sarama.ConsumerMessage) bool {
	added, open := 0, true
	var err error
	for n := 1; ; n++ {
		var ok bool
		if ok, err = pc.add(msg); ok {
			added++
		}
		if err != nil || n == drainMax {
			break
		}
		next, more := msg, false
		select {
		case next, open = <-msgs:
			more = open
		default:
		}
		if !more {
			break
		}
		msg = next
	}
	pc.src.lastRecord.Store(time.Now().UnixNano())
	pc.src.totals.consumed.Add(int64(added))
	pc.src.sink.metrics.consumed.Add(float64(added))
	pc.lag.Set(float64(pc.claim.HighWaterMarkOffset() - msg.Offset - 1))
	return err == nil && open
}

// add adds msg's record to the current batch and hands the batch over if
// that made it full. A message below the batch's end (delivered again) is
// already committed or batched: add skips it and reports false.
func (pc *partitionConsumer) add(msg *sarama.ConsumerMessage) (bool, error) {
	if msg.Offset < pc.cur.next {
		return false, nil
	}
	pc.cur.add(pc.src.sink.parse(msg.Offset, msg.Value, pc.pcache), len(msg.Value))
	if pc.commits.full(pc.cur) {
		return true, pc.handOver()
	}
	return true, nil
}

// handOver queues the current batch for commit and takes an empty one,
// which goes on from where the full one ended. It waits while the previous
// batch is still being committed, and refuses once a commit has failed.
func (pc *partitionConsumer) handOver() error {
	if err := pc.commitErr(); err != nil {
		return err
	}
	next := pc.cur.next
	pc.batches <- pc.cur
	pc.cur = <-pc.free
	pc.cur.reset(next)
	return nil
}

// commitLoop is the commit goroutine. It commits the batches handed over,
// in order, until batches is closed, and gives each back through free.
// After a commit has failed it drops the batches instead: nothing after a
// failed commit may be committed, or the partition would have a gap.
func (pc *partitionConsumer) commitLoop(ctx context.Context) {
	defer close(pc.done)
	for b := range pc.batches {
		if pc.commitErr() == nil {
			if err := pc.commits.commit(ctx, b); err != nil {
				pc.failure.Store(&err)
			}
		}
		pc.free <- b
	}
}

// markCommitted runs on the commit goroutine after each commit, once the
// manifest naming the batch is durable: it counts what the commit wrote
// and marks the partition's offset up to the manifest's end. The offsets
// Kafka keeps are advisory, for lag tooling; the next owner of the
// partition resumes from the lake's manifests.
func (pc *partitionConsumer) markCommitted(res flushResult, st sourceState) {
	pc.src.totals.valid.Add(res.valid)
	pc.src.totals.rejected.Add(res.rejected)
	pc.src.sumMu.Lock()
	pc.src.committed.addCommit(res, "")
	pc.src.sumMu.Unlock()
	pc.sess.MarkOffset(pc.claim.Topic(), pc.claim.Partition(), st.end, "")
}

// stop hands over the batch being filled, closes batches so that the commit
// goroutine quits once it has committed every batch handed over, and waits
// for it: for as long as the session lasts, then for at most grace, after
// which the commit in flight is cancelled. Abandoned records were never
// committed: the partition's next owner reads them again from the lake's
// position. stop returns the error of a failed commit, or nil if the
// session is over anyway.
func (pc *partitionConsumer) stop() error {
	defer pc.cancelCommits()
	// The partition's next owner reports its lag: a stale value here would
	// add to it.
	defer pc.src.sink.metrics.lag.DeleteLabelValues(pc.claim.Topic(), strconv.Itoa(int(pc.claim.Partition())))
	if pc.cur.len() > 0 {
		pc.batches <- pc.cur
	}
	pc.cur = nil
	close(pc.batches)
	select {
	case <-pc.done:
	case <-pc.sess.Context().Done():
		select {
		case <-pc.done:
		case <-time.After(pc.grace):
			pc.cancelCommits()
			<-pc.done
		}
	}
	if err := pc.commitErr(); err != nil {
		return pc.failed(err)
	}
	return nil
}

// commitErr returns the error of the commit that failed, if one did.
func (pc *partitionConsumer) commitErr() error {
	if p := pc.failure.Load(); p != nil {
		return *p
	}
	return nil
}

// failed handles a commit that could not be written: the batch is dropped
// (it was never committed) and the session ends, so that the partition is
// consumed again from the lake's position.
func (pc *partitionConsumer) failed(err error) error {
	pc.src.sink.log.Error("commit failed; the partition resumes from the lake's position", "err", err)
	if pc.sess.Context().Err() != nil {
		return nil // the session is over anyway
	}
	return err
}
