package ingest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/dataco/clickstream/internal/lake"
)

// markingSession is a group session that records the offsets marked and
// checks each against the lake when it is marked: an offset may move only
// up to the end of a manifest that is already durable.
type markingSession struct {
	claimSession
	t      *testing.T
	store  lake.Store // the lake as it is, whatever fails on the way there
	source string

	mu     sync.Mutex
	marked []int64
}

func (s *markingSession) MarkOffset(topic string, p int32, offset int64, _ string) {
	m, err := lake.LastManifest(context.Background(), s.store, s.source)
	switch {
	case err != nil:
		s.t.Errorf("read the last manifest: %v", err)
	case m == nil || m.End < offset:
		s.t.Errorf("offset %d of %s/%d marked before a manifest covers it (last manifest %+v)", offset, topic, p, m)
	}
	s.mu.Lock()
	s.marked = append(s.marked, offset)
	s.mu.Unlock()
}

// offsets returns the offsets marked so far, in order.
func (s *markingSession) offsets() []int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.marked)
}

// partitionTest is one partition consumer of partition t/0 over a fresh
// file:// lake, fed by the test.
type partitionTest struct {
	store  lake.Store // the lake itself, read past any fault injection
	k      *kafkaSource
	sess   *markingSession
	feed   *claimFeed
	cancel context.CancelFunc // ends the session
}

// newPartitionTest sets up a partition consumer's surroundings with cfg's
// limits; wrap, if not nil, puts a fault-injecting store between the
// consumer and the lake.
func newPartitionTest(t *testing.T, cfg Config, wrap func(lake.Store) lake.Store) *partitionTest {
	t.Helper()
	store, err := lake.NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	s := newTestSink(t, store, "aaaa")
	if wrap != nil {
		s.store = wrap(store)
	}
	source := lake.KafkaSource("t", 0)
	st, err := s.recover(context.Background(), source)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &partitionTest{
		store:  store,
		k:      &kafkaSource{cfg: &cfg, sink: s, states: map[int32]*sourceState{0: &st}},
		sess:   &markingSession{claimSession: claimSession{ctx: ctx}, t: t, store: store, source: source},
		feed:   &claimFeed{ch: make(chan *sarama.ConsumerMessage, 1024)},
		cancel: cancel,
	}
}

// start runs the partition consumer as ConsumeClaim does, on a goroutine of
// its own, with stop's grace set to grace unless it is 0. The returned
// function waits for stop and returns its error; it fails the test if the
// consumer has not stopped within stopWait.
func (p *partitionTest) start(t *testing.T, grace time.Duration) (wait func() error) {
	t.Helper()
	pc := p.k.startPartitionConsumer(p.sess, p.feed, p.k.states[0])
	if grace > 0 {
		pc.grace = grace
	}
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		pc.consume(p.feed.Messages())
		err = pc.stop()
	}()
	t.Cleanup(func() {
		p.cancel()
		select {
		case <-done:
		case <-time.After(stopWait):
			t.Error("the partition consumer did not stop")
		}
	})
	return func() error {
		t.Helper()
		select {
		case <-done:
			return err
		case <-time.After(stopWait):
			t.Fatal("the partition consumer did not stop")
			return nil
		}
	}
}

// stopWait is how long a test waits for a partition consumer to stop.
const stopWait = 30 * time.Second

// send feeds the messages msg(from) … msg(to-1) at their offsets.
func (p *partitionTest) send(from, to int, msg func(int) []byte) {
	for i := from; i < to; i++ {
		p.feed.ch <- &sarama.ConsumerMessage{Topic: "t", Partition: 0, Offset: int64(i), Value: msg(i)}
	}
}

// manifestEnds returns the end of each manifest in the lake, in order.
func (p *partitionTest) manifestEnds(t *testing.T) []int64 {
	t.Helper()
	var ends []int64
	for _, m := range readLake(t, p.store).manifests {
		ends = append(ends, m.End)
	}
	return ends
}

// fixedMessage is a valid message whose size does not depend on i (below
// a million).
func fixedMessage(i int) []byte {
	return fmt.Appendf(nil, `{"user_id":"u%06d","timestamp":1800000000000,"url":"/p"}`, i)
}

// TestPartitionConsumerHandsOverBySize checks that a batch is handed over
// and committed as soon as it reaches a size limit, while the claim is still
// open, that nothing smaller is (the timer is too slow to fire), and that
// the last, partial batch is committed when the claim ends.
func TestPartitionConsumerHandsOverBySize(t *testing.T) {
	size := len(fixedMessage(0))
	tests := []struct {
		name              string
		records, rawBytes int
	}{
		{"by records", 100, 1 << 30},
		{"by bytes", 1 << 30, 100 * size},
		{"by bytes, rounded up to the record", 1 << 30, 99*size + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := NewConfig()
			cfg.FlushRecords, cfg.FlushBytes, cfg.FlushInterval = tt.records, tt.rawBytes, time.Hour
			p := newPartitionTest(t, cfg, nil)
			wait := p.start(t, 0)
			p.send(0, 250, fixedMessage)
			// A batch is handed over as the record that fills it is
			// added: once all are counted, the two full ones are.
			waitFor(t, 20*time.Second, "250 records consumed", func() bool { return p.k.totals.consumed.Load() == 250 })
			waitFor(t, 20*time.Second, "two batches to commit", func() bool { return len(p.sess.offsets()) >= 2 })
			if got, want := p.sess.offsets(), []int64{100, 200}; !slices.Equal(got, want) {
				t.Fatalf("with the claim open, offsets marked %v, want %v", got, want)
			}
			if got, want := p.manifestEnds(t), []int64{100, 200}; !slices.Equal(got, want) {
				t.Fatalf("with the claim open, manifests end at %v, want %v", got, want)
			}
			close(p.feed.ch)
			if err := wait(); err != nil {
				t.Fatal(err)
			}
			if got, want := p.sess.offsets(), []int64{100, 200, 250}; !slices.Equal(got, want) {
				t.Fatalf("offsets marked %v, want %v", got, want)
			}
			if got, want := p.manifestEnds(t), []int64{100, 200, 250}; !slices.Equal(got, want) {
				t.Fatalf("manifests end at %v, want %v", got, want)
			}
			if got := p.k.totals.valid.Load(); got != 250 {
				t.Fatalf("%d valid records counted, want 250", got)
			}
		})
	}
}

// TestPartitionConsumerHandsOverByTime checks that a batch far below the
// size limits is committed by the flush interval while the claim is still
// open, and again after more records arrive.
func TestPartitionConsumerHandsOverByTime(t *testing.T) {
	cfg := NewConfig()
	cfg.FlushRecords, cfg.FlushBytes, cfg.FlushInterval = 1<<30, 1<<30, 10*time.Millisecond
	p := newPartitionTest(t, cfg, nil)
	wait := p.start(t, 0)
	marked := func(end int64) func() bool {
		return func() bool {
			o := p.sess.offsets()
			return len(o) > 0 && o[len(o)-1] == end
		}
	}
	p.send(0, 10, testMessage)
	waitFor(t, 20*time.Second, "offset 10 to be marked with the claim open", marked(10))
	p.send(10, 20, testMessage)
	waitFor(t, 20*time.Second, "offset 20 to be marked with the claim open", marked(20))
	close(p.feed.ch)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	got := readLake(t, p.store)
	if err := got.checkChains(); err != nil {
		t.Fatal(err)
	}
	if ends := p.manifestEnds(t); len(ends) < 2 || ends[len(ends)-1] != 20 {
		t.Fatalf("manifests end at %v; want at least 2, the last at 20", ends)
	}
}

// TestPartitionConsumerDrainsWhenSessionEnds checks that records still in
// the batch being filled when the session ends are committed, although the
// session's context is done: a rebalance or SIGTERM loses nothing.
func TestPartitionConsumerDrainsWhenSessionEnds(t *testing.T) {
	cfg := NewConfig()
	cfg.FlushRecords, cfg.FlushBytes, cfg.FlushInterval = 1<<30, 1<<30, time.Hour
	p := newPartitionTest(t, cfg, nil)
	wait := p.start(t, 0)
	p.send(0, 30, testMessage)
	waitFor(t, 20*time.Second, "30 records consumed", func() bool { return p.k.totals.consumed.Load() == 30 })
	p.cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got, want := p.sess.offsets(), []int64{30}; !slices.Equal(got, want) {
		t.Fatalf("offsets marked %v, want %v", got, want)
	}
	if got, want := p.manifestEnds(t), []int64{30}; !slices.Equal(got, want) {
		t.Fatalf("manifests end at %v, want %v", got, want)
	}
}

// failingManifest is a real store that refuses its nth manifest write,
// and only that one.
type failingManifest struct {
	lake.Store
	n int

	mu     sync.Mutex
	writes int
}

var errInjected = errors.New("injected: manifest write failed")

func (f *failingManifest) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if strings.HasPrefix(key, lake.ManifestsPrefix) {
		f.mu.Lock()
		f.writes++
		fail := f.writes == f.n
		f.mu.Unlock()
		if fail {
			return errInjected
		}
	}
	return f.Store.PutIfAbsent(ctx, key, data)
}

// TestPartitionConsumerStopsAtFailedCommit checks that an offset moves only
// after the commit of its batch succeeded: once a commit fails, no later
// batch is committed or marked, even one already handed over and although
// the store would take it (committing it would leave a gap), and the claim
// ends with the commit's error.
func TestPartitionConsumerStopsAtFailedCommit(t *testing.T) {
	cfg := NewConfig()
	cfg.FlushRecords, cfg.FlushBytes, cfg.FlushInterval = 100, 1<<30, time.Hour
	p := newPartitionTest(t, cfg, func(s lake.Store) lake.Store { return &failingManifest{Store: s, n: 2} })
	wait := p.start(t, 0)
	p.send(0, 350, testMessage)
	close(p.feed.ch)
	if err := wait(); !errors.Is(err, errInjected) {
		t.Fatalf("claim ended with %v, want the failed commit's error", err)
	}
	if got, want := p.sess.offsets(), []int64{100}; !slices.Equal(got, want) {
		t.Fatalf("offsets marked %v, want %v", got, want)
	}
	if got, want := p.manifestEnds(t), []int64{100}; !slices.Equal(got, want) {
		t.Fatalf("manifests end at %v, want %v", got, want)
	}
}

// blockingManifests is a real store whose manifest writes signal that they
// started, then hang until their context ends.
type blockingManifests struct {
	lake.Store
	started chan struct{}
}

func (b blockingManifests) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if strings.HasPrefix(key, lake.ManifestsPrefix) {
		select {
		case b.started <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return ctx.Err()
	}
	return b.Store.PutIfAbsent(ctx, key, data)
}

// TestPartitionConsumerAbandonsHungCommit checks that stop returns once the
// grace after the session's end has passed, cancelling a commit that hangs,
// and that nothing is marked or committed: the partition's next owner reads
// the records again.
func TestPartitionConsumerAbandonsHungCommit(t *testing.T) {
	cfg := NewConfig()
	cfg.FlushRecords, cfg.FlushBytes, cfg.FlushInterval = 10, 1<<30, time.Hour
	started := make(chan struct{}, 1)
	p := newPartitionTest(t, cfg, func(s lake.Store) lake.Store { return blockingManifests{Store: s, started: started} })
	wait := p.start(t, 50*time.Millisecond)
	p.send(0, 10, testMessage)
	select {
	case <-started:
	case <-time.After(20 * time.Second):
		t.Fatal("the batch's manifest write never started")
	}
	p.cancel()
	if err := wait(); err != nil {
		t.Fatalf("stop after the session ended = %v, want nil", err)
	}
	if got := p.sess.offsets(); len(got) != 0 {
		t.Fatalf("offsets marked %v for an abandoned commit", got)
	}
	if got := p.manifestEnds(t); len(got) != 0 {
		t.Fatalf("manifests end at %v after an abandoned commit", got)
	}
}

// TestPartitionConsumerSkipsRedelivered checks that messages delivered
// again (below what is batched or committed) are skipped: every offset is
// committed once and counted once.
func TestPartitionConsumerSkipsRedelivered(t *testing.T) {
	cfg := NewConfig()
	cfg.FlushRecords, cfg.FlushBytes, cfg.FlushInterval = 20, 1<<30, time.Hour
	p := newPartitionTest(t, cfg, nil)
	wait := p.start(t, 0)
	p.send(0, 50, testMessage)
	p.send(25, 80, testMessage) // 25…49 again: some committed, some batched
	p.send(0, 10, testMessage)
	close(p.feed.ch)
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	got := readLake(t, p.store)
	if err := got.checkChains(); err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	for i := range 80 {
		msgs = append(msgs, testMessage(i))
	}
	want, rejected := expected(msgs)
	assertSameEvents(t, got.events, want)
	if len(got.rejected) != rejected {
		t.Fatalf("dead-letter area holds %d records, want %d", len(got.rejected), rejected)
	}
	if n := p.k.totals.consumed.Load(); n != 80 {
		t.Fatalf("%d records counted as consumed, want 80", n)
	}
}
