package indexer

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/dataco/clickstream/internal/aggregate"
)

// PrintTop writes the n most clicked URLs of each of the top countries
// (all when countries <= 0) over window (every window when nil), then the
// curl command that runs the same query.
func PrintTop(ctx context.Context, cfg Config, out io.Writer, window *aggregate.Window, n, countries int, logger *slog.Logger) error {
	ix, err := New(cfg, logger, nil)
	if err != nil {
		return err
	}
	defer ix.Close(context.WithoutCancel(ctx))
	top, err := TopURLs(ctx, ix.Client(), ix.Alias(), window, n)
	if err != nil {
		return fmt.Errorf("indexer: top URLs: %w", err)
	}
	if len(top) == 0 {
		fmt.Fprintln(out, "no documents yet")
	}
	for i, c := range top {
		if countries > 0 && i >= countries {
			fmt.Fprintf(out, "  … and %d more countries\n", len(top)-countries)
			break
		}
		fmt.Fprintf(out, "  %-8s %7d clicks\n", c.Country, c.Clicks)
		for _, u := range c.URLs {
			fmt.Fprintf(out, "      %7d  %s\n", u.Clicks, u.URL)
		}
	}
	fmt.Fprintf(out, "\nquery it yourself:\n  %s\n", TopURLsCurl(cfg.Addresses[0], ix.Alias(), window, n))
	return nil
}
