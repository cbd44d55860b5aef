package main

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dataco/clickstream/internal/gen"
	"github.com/dataco/clickstream/internal/kafkaauth"
)

func newGenCmd() *cobra.Command {
	cfg := gen.NewConfig()
	kc := gen.KafkaConfig{Auth: kafkaauth.NewConfig()}
	var brokers string
	cmd := &cobra.Command{
		Use:   "gen [flags]",
		Short: "generate a realistic synthetic clickstream into Kafka or stdout (NDJSON)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := cfg.Validate(); err != nil {
				return usageErrorf("%w", err)
			}
			g, err := gen.New(cfg)
			if err != nil {
				return err
			}
			if !cmd.Flags().Changed("brokers") {
				w := bufio.NewWriter(cmd.OutOrStdout())
				defer w.Flush()
				_, err := g.WriteNDJSON(cmd.Context(), w)
				return err
			}
			kc.Brokers = strings.Split(brokers, ",")
			kc.Auth.SecretsFromEnv(nil)
			if err := kc.Validate(); err != nil {
				return usageError{err}
			}
			n, err := gen.Produce(cmd.Context(), g, kc)
			tr := g.Truth()
			fmt.Fprintf(cmd.ErrOrStderr(), "gen: produced %d messages to %s (%d valid, %d of them from bots)\n", n, kc.Topic, tr.Valid, tr.Bots)
			return err
		},
	}
	fs := cmd.Flags()
	cfg.AddFlags(fs)
	fs.StringVar(&brokers, "brokers", "", "write to these Kafka brokers (comma-separated) instead of stdout")
	fs.StringVar(&kc.Topic, "topic", "clicks", "Kafka topic")
	fs.BoolVar(&kc.Keyed, "keyed", true, "key messages by user id (a user's clicks stay in one partition)")
	kc.Auth.AddFlags(fs)
	return cmd
}
