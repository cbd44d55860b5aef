package gen

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/dataco/clickstream/internal/kafkaauth/kafkatest"
)

// TestProduceSASL produces into a fresh topic through the stack's SASL_SSL
// listener (TLS verified against the stack's CA, SCRAM-SHA-512) and reads
// the topic back: every message is there once, keyed by its user, each
// user's messages in one partition and in the generator's order.
func TestProduceSASL(t *testing.T) {
	k := kafkatest.SASL(t)
	sc := k.Config(t)
	topic := fmt.Sprintf("test-gen-produce-sasl-%d", time.Now().UnixNano())
	admin, err := sarama.NewClusterAdmin(k.Brokers, sc)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 3, ReplicationFactor: 1}, false); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = admin.DeleteTopic(topic) })

	cfg := NewConfig()
	cfg.Events, cfg.Seed = 3000, 21
	want := generate(t, cfg)
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n, err := Produce(ctx, g, KafkaConfig{Brokers: k.Brokers, Topic: topic, Keyed: true, Auth: k.Auth})
	if err != nil || n != len(want) {
		t.Fatalf("Produce = %d, %v; want %d messages", n, err, len(want))
	}

	got := readTopic(ctx, t, k, topic)
	if len(got) != len(want) {
		t.Fatalf("read %d messages back, want %d", len(got), len(want))
	}
	// Per key (user), the values in order, all in one partition; keyless
	// messages (invalid user ids) go to any partition: compared as a set.
	type seq struct {
		partition int32
		values    []string
	}
	gotBy := map[string]*seq{}
	for _, m := range got {
		s := gotBy[string(m.Key)]
		if s == nil {
			s = &seq{partition: m.Partition}
			gotBy[string(m.Key)] = s
		}
		if s.partition != m.Partition && len(m.Key) > 0 {
			t.Errorf("key %q in partitions %d and %d", m.Key, s.partition, m.Partition)
		}
		s.values = append(s.values, string(m.Value))
	}
	wantBy := map[string][]string{}
	for _, m := range want {
		wantBy[string(m.Key)] = append(wantBy[string(m.Key)], string(m.Value))
	}
	for key, w := range wantBy {
		g := gotBy[key]
		if g == nil {
			t.Fatalf("key %q: no message read back", key)
		}
		if key == "" {
			slices.Sort(w)
			slices.Sort(g.values)
		}
		if !slices.Equal(w, g.values) {
			t.Fatalf("key %q: %d messages read back, want %d in the generator's order", key, len(g.values), len(w))
		}
	}
}

// readTopic reads every partition of topic from the oldest offset to the
// newest one.
func readTopic(ctx context.Context, t *testing.T, k kafkatest.Kafka, topic string) []*sarama.ConsumerMessage {
	t.Helper()
	client, err := sarama.NewClient(k.Brokers, k.Config(t))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var got []*sarama.ConsumerMessage
	for _, p := range parts {
		end, err := client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatal(err)
		}
		if end == 0 {
			continue
		}
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		for done := false; !done; {
			select {
			case m := <-pc.Messages():
				got = append(got, m)
				done = m.Offset+1 >= end
			case <-ctx.Done():
				t.Fatalf("partition %d: %v", p, ctx.Err())
			}
		}
		pc.Close()
	}
	return got
}
