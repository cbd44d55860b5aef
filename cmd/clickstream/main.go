// Command clickstream is the single entry point of the clickstream platform:
// every component (gen, ingest, coordinator, worker, submit, run, index, ...)
// is a subcommand. Mains stay thin: each subcommand parses its flags (and
// the environment) into the component's Config and calls the component's
// Run; root.go holds what the subcommands share.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// SIGINT and SIGTERM cancel the context: components drain, flush and
	// return; a second signal kills the process the default way.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
