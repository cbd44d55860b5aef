package gen

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/dataco/clickstream/internal/kafkaauth"
)

// KafkaConfig says where Produce sends messages.
type KafkaConfig struct {
	Brokers []string
	Topic   string
	// Keyed sends each message with its user id as the key, so that a
	// user's clicks stay in one partition, in order; unkeyed messages are
	// spread round-robin.
	Keyed bool
	// Auth secures the connections: TLS and SASL.
	Auth kafkaauth.Config
}

// Validate checks the brokers and the connection settings.
func (kc KafkaConfig) Validate() error {
	if len(kc.Brokers) == 0 {
		return errors.New("gen: no Kafka brokers")
	}
	if kc.Topic == "" {
		return errors.New("gen: no Kafka topic")
	}
	if err := errors.Join(kafkaauth.CheckBrokers(kc.Brokers), kc.Auth.Validate()); err != nil {
		return fmt.Errorf("gen: %w", err)
	}
	return nil
}

// Produce streams the generator's messages into Kafka with an idempotent
// async producer, and returns once every message sent is acknowledged. The
// first delivery error stops it.
func Produce(ctx context.Context, g *Generator, kc KafkaConfig) (int, error) {
	if err := kc.Validate(); err != nil {
		return 0, err
	}
	sc := sarama.NewConfig()
	sc.ClientID = "clickstream-gen"
	sc.Version = sarama.V3_6_0_0
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Producer.Idempotent = true
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Retry.Max = 10
	sc.Producer.Return.Successes = true
	sc.Producer.Compression = sarama.CompressionLZ4
	sc.Producer.Flush.Frequency = 5 * time.Millisecond
	sc.Producer.Flush.Bytes = 512 << 10
	if kc.Keyed {
		sc.Producer.Partitioner = sarama.NewHashPartitioner
	} else {
		sc.Producer.Partitioner = sarama.NewRoundRobinPartitioner
	}
	if err := kc.Auth.Apply(sc); err != nil {
		return 0, fmt.Errorf("gen: %w", err)
	}
	p, err := sarama.NewAsyncProducer(kc.Brokers, sc)
	if err != nil {
		return 0, fmt.Errorf("gen: connect to Kafka %v: %w", kc.Brokers, kafkaauth.Explain(err))
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		acked    int
	)
	failed := make(chan struct{})
	// Owned here: drain acknowledgements and errors until the producer closes.
	wg.Add(2)
	go func() {
		defer wg.Done()
		for range p.Successes() {
			mu.Lock()
			acked++
			mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for perr := range p.Errors() {
			mu.Lock()
			if firstErr == nil {
				firstErr = fmt.Errorf("gen: deliver to %s: %w", kc.Topic, kafkaauth.Explain(perr.Err))
				close(failed)
			}
			mu.Unlock()
		}
	}()
	n, serr := g.Stream(ctx, func(m Message) error {
		pm := &sarama.ProducerMessage{Topic: kc.Topic, Value: sarama.ByteEncoder(m.Value)}
		if kc.Keyed {
			pm.Key = sarama.ByteEncoder(m.Key)
		}
		select {
		case p.Input() <- pm:
			return nil
		case <-failed:
			return errors.New("gen: delivery failed")
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	p.AsyncClose() // flushes what is buffered
	wg.Wait()
	if firstErr != nil {
		return acked, firstErr
	}
	if serr != nil {
		return acked, serr
	}
	if acked != n {
		return acked, fmt.Errorf("gen: %d of %d messages acknowledged", acked, n)
	}
	return n, nil
}
