package ingest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/lake"
)

// claimSession is a sarama group session as ConsumeClaim sees it.
type claimSession struct {
	ctx context.Context
}

func (s *claimSession) Claims() map[string][]int32                  { return map[string][]int32{"t": {0}} }
func (s *claimSession) MemberID() string                            { return "member" }
func (s *claimSession) GenerationID() int32                         { return 1 }
func (s *claimSession) MarkOffset(string, int32, int64, string)     {}
func (s *claimSession) Commit()                                     {}
func (s *claimSession) ResetOffset(string, int32, int64, string)    {}
func (s *claimSession) MarkMessage(*sarama.ConsumerMessage, string) {}
func (s *claimSession) Context() context.Context                    { return s.ctx }

// claimFeed is a claim of partition t/0 whose messages the test sends.
type claimFeed struct {
	ch chan *sarama.ConsumerMessage
}

func (c *claimFeed) Topic() string                            { return "t" }
func (c *claimFeed) Partition() int32                         { return 0 }
func (c *claimFeed) InitialOffset() int64                     { return 0 }
func (c *claimFeed) HighWaterMarkOffset() int64               { return 1 << 40 }
func (c *claimFeed) Messages() <-chan *sarama.ConsumerMessage { return c.ch }

// claimMessages is the test stream: contract-valid and invalid messages,
// some with escaped user ids (decoded, not aliased).
func claimMessages(i int) []byte {
	if i%13 == 5 {
		return []byte(`{"user_id":"u\u0031` + fmt.Sprint(i%97) + `","timestamp":1800000000000,"url":"/e"}`)
	}
	return testMessage(i)
}

// TestConsumeClaimWithZombie drives ConsumeClaim — its drain loop, its
// committer goroutine, small size-triggered and time-triggered flushes —
// while a zombie writer commits overlapping ranges of the same source: the
// lake ends with every position exactly once and an unbroken manifest chain.
func TestConsumeClaimWithZombie(t *testing.T) {
	const n = 20_000
	store, err := lake.NewFileStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	source := lake.KafkaSource("t", 0)
	owner, zombie := newTestSink(t, store, "aaaa"), newTestSink(t, store, "zzzz")
	cfg := NewConfig()
	cfg.FlushRecords, cfg.FlushBytes, cfg.FlushInterval = 777, 1<<30, 5*time.Millisecond
	k := &kafkaSource{cfg: &cfg, sink: owner}
	st, err := owner.recover(context.Background(), source)
	if err != nil {
		t.Fatal(err)
	}
	k.states = map[int32]*sourceState{0: &st}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	feed := &claimFeed{ch: make(chan *sarama.ConsumerMessage, 1024)}

	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range n {
			feed.ch <- &sarama.ConsumerMessage{Offset: int64(i), Value: claimMessages(i)}
			if i%5000 == 0 {
				time.Sleep(3 * time.Millisecond) // let the timer flush now and then
			}
		}
		close(feed.ch)
	})
	wg.Go(func() {
		zs, err := zombie.recover(context.Background(), source)
		if err != nil {
			t.Error(err)
			return
		}
		b := &batch{}
		b.reset(zs.end)
		in := &parseCache{strs: event.NewInterner(64), bots: zombie.bots.NewCache()}
		for i := range n {
			if int64(i) < b.next {
				continue
			}
			b.add(zombie.parse(int64(i), claimMessages(i), in), len(claimMessages(i)))
			if b.len() >= 1500 {
				if _, err := zombie.flush(context.Background(), &zs, b); err != nil {
					t.Error(err)
					return
				}
			}
		}
		if _, err := zombie.flush(context.Background(), &zs, b); err != nil {
			t.Error(err)
		}
	})
	if err := k.ConsumeClaim(&claimSession{ctx: ctx}, feed); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	got := readLake(t, store)
	if err := got.checkChains(); err != nil {
		t.Fatal(err)
	}
	var msgs [][]byte
	for i := range n {
		msgs = append(msgs, claimMessages(i))
	}
	want, rejected := expected(msgs)
	assertSameEvents(t, got.events, want)
	if len(got.rejected) != rejected {
		t.Fatalf("dead-letter area holds %d records, want %d", len(got.rejected), rejected)
	}
}
