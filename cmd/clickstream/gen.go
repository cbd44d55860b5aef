package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dataco/clickstream/internal/gen"
)

func init() {
	register("gen", "generate a realistic synthetic clickstream into Kafka or stdout (NDJSON)", runGen)
}

func runGen(ctx context.Context, args []string, stdout io.Writer) error {
	cfg := gen.NewConfig()
	fs := flag.NewFlagSet("gen", flag.ContinueOnError)
	cfg.AddFlags(fs)
	var kc gen.KafkaConfig
	brokers := os.Getenv("CLICKSTREAM_KAFKA_BROKERS")
	toKafka := false
	fs.Func("brokers", "write to these Kafka brokers (comma-separated) instead of stdout", func(s string) error {
		brokers, toKafka = s, true
		return nil
	})
	fs.StringVar(&kc.Topic, "topic", "clicks", "Kafka topic")
	fs.BoolVar(&kc.Keyed, "keyed", true, "key messages by user id (a user's clicks stay in one partition)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return usageErrorf("%w", err)
	}
	g, err := gen.New(cfg)
	if err != nil {
		return err
	}
	if !toKafka {
		w := bufio.NewWriter(stdout)
		defer w.Flush()
		_, err := g.WriteNDJSON(ctx, w)
		return err
	}
	kc.Brokers = strings.Split(brokers, ",")
	n, err := gen.Produce(ctx, g, kc)
	fmt.Fprintf(os.Stderr, "gen: produced %d messages to %s\n", n, kc.Topic)
	return err
}
