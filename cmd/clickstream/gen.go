package main

import (
	"bufio"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dataco/clickstream/internal/gen"
	"github.com/dataco/clickstream/internal/secret"
)

func newGenCmd() *cobra.Command {
	cfg := gen.NewConfig()
	var kc gen.KafkaConfig
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
			if err := secret.RefuseInAddresses("--brokers", "give host:port (the Kafka client takes no credentials)", kc.Brokers...); err != nil {
				return usageError{err}
			}
			n, err := gen.Produce(cmd.Context(), g, kc)
			fmt.Fprintf(cmd.ErrOrStderr(), "gen: produced %d messages to %s\n", n, kc.Topic)
			return err
		},
	}
	fs := cmd.Flags()
	cfg.AddFlags(fs)
	fs.StringVar(&brokers, "brokers", "", "write to these Kafka brokers (comma-separated) instead of stdout")
	fs.StringVar(&kc.Topic, "topic", "clicks", "Kafka topic")
	fs.BoolVar(&kc.Keyed, "keyed", true, "key messages by user id (a user's clicks stay in one partition)")
	return cmd
}
