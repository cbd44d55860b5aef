package main

// The client commands that follow jobs on a coordinator: status and
// cancel, and what submit and run share with them.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/internal/mtls"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// clientFlags are the flags of the commands that call a coordinator.
type clientFlags struct {
	addr    string
	timeout time.Duration
	tls     mtls.Files
}

func (c *clientFlags) add(fs *pflag.FlagSet) {
	fs.StringVar(&c.addr, "coordinator", coordinator.DefaultAddr, "coordinator addresses, comma-separated: any of them answers, and the client follows a failover")
	fs.DurationVar(&c.timeout, "timeout", coordinator.DefaultClientTimeout, "timeout of each request to the coordinator")
	c.tls.AddFlags(fs)
}

// dial returns a client of the coordinators, over mutual TLS when the
// certificate files are given (an operator's or a viewer's).
func (c *clientFlags) dial() (*coordinator.Client, error) {
	if !c.tls.Enabled() {
		return coordinator.Dial(c.addr, c.timeout)
	}
	src, err := mtls.Load(c.tls)
	if err != nil {
		return nil, err
	}
	return coordinator.Dial(c.addr, c.timeout, coordinator.WithTLS(src))
}

func newStatusCmd() *cobra.Command {
	var cf clientFlags
	var limit int
	cmd := &cobra.Command{
		Use:   "status [--coordinator ADDR[,ADDR...]] [JOB]",
		Short: "show a job, or list jobs",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usageErrorf("at most one job id, got %v", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stdout := cmd.Context(), cmd.OutOrStdout()
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			if len(args) == 0 {
				jobs, err := c.List(ctx, limit)
				if err != nil {
					return err
				}
				coordinator.FormatList(stdout, jobs)
				return nil
			}
			j, err := c.Get(ctx, args[0])
			if err != nil {
				return err
			}
			coordinator.FormatStatus(stdout, j)
			return nil
		},
	}
	cf.add(cmd.Flags())
	cmd.Flags().IntVar(&limit, "limit", 20, "jobs to list")
	return cmd
}

func newCancelCmd() *cobra.Command {
	var cf clientFlags
	cmd := &cobra.Command{
		Use:   "cancel [--coordinator ADDR[,ADDR...]] JOB",
		Short: "cancel a job",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("want exactly one job id")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stdout, id := cmd.Context(), cmd.OutOrStdout(), args[0]
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			if _, err := c.Cancel(ctx, id); err != nil {
				return err
			}
			wctx, cancel := context.WithTimeout(ctx, cf.timeout)
			defer cancel()
			j, err := c.Wait(wctx, id, nil)
			if err != nil {
				fmt.Fprintf(stdout, "job %s: cancel requested; the leader has not stopped it yet\n", id)
				return nil
			}
			fmt.Fprintf(stdout, "job %s %s\n", j.GetId(), coordinator.StateName(j.GetState()))
			return nil
		},
	}
	cf.add(cmd.Flags())
	return cmd
}

// waitJob follows a job with a progress display on stderr, prints its
// summary on stdout, and returns an error unless it succeeded.
func waitJob(ctx context.Context, c *coordinator.Client, id string, stdout, stderr io.Writer) error {
	return waitJobThen(ctx, c, id, stdout, stderr, false)
}

// waitJobThen asks whether a succeeded job's publications are done after
// publishedPollMin, then twice as long each time, up to publishedPollMax:
// a publication of a small result is done within tens of milliseconds.
const (
	publishedPollMin = 5 * time.Millisecond
	publishedPollMax = 100 * time.Millisecond
)

// waitJobThen is waitJob; with published, it also waits for a succeeded
// job's publications (the Iceberg table, the index) to finish, so that
// what the summary reports is in place when the command returns.
func waitJobThen(ctx context.Context, c *coordinator.Client, id string, stdout, stderr io.Writer, published bool) error {
	p := coordinator.NewProgress(stderr, isTerminal(stderr))
	j, err := c.Wait(ctx, id, p.Update)
	poll := publishedPollMin
	for err == nil && published && j.GetState() == pb.JobState_JOB_STATE_SUCCEEDED && j.GetIndexerStatus() == "pending" {
		select {
		case <-ctx.Done():
			err = ctx.Err()
		case <-time.After(poll):
			j, err = c.Get(ctx, id)
		}
		poll = min(2*poll, publishedPollMax)
	}
	p.Done()
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return fmt.Errorf("stopped following job %s; it goes on (clickstream status %s, clickstream cancel %s)", id, id, id)
		}
		return fmt.Errorf("following job %s: %w", id, err)
	}
	coordinator.FormatSummary(stdout, j)
	switch j.GetState() {
	case pb.JobState_JOB_STATE_SUCCEEDED:
		if w := j.GetWarning(); w != "" {
			fmt.Fprintf(stderr, "clickstream: warning: job %s: %s\n", id, w)
		}
		return nil
	case pb.JobState_JOB_STATE_CANCELLED:
		return fmt.Errorf("job %s was cancelled", id)
	}
	return fmt.Errorf("job %s failed: %s", id, j.GetError())
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
