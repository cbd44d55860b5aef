package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dataco/clickstream/coordinator"
	"github.com/dataco/clickstream/internal/cluster"
	pb "github.com/dataco/clickstream/proto/clickstream/v1"
)

// jobSpec checks the job flags into a JobSpec; a bad one is a usage error.
func jobSpec(jf *coordinator.JobSpecFlags) (*pb.JobSpec, error) {
	spec, err := jf.Spec()
	if err != nil {
		return nil, usageError{err}
	}
	return spec, nil
}

func newSubmitCmd() *cobra.Command {
	var (
		cf     clientFlags
		jf     coordinator.JobSpecFlags
		wait   bool
		window time.Duration
		key    string
	)
	cmd := &cobra.Command{
		Use:   "submit --from T --to T --out URI [--window D] [--coordinator ADDR[,ADDR...]] [--lake URI] [--format ndjson|csv] [--idempotency-key K] [--wait]",
		Short: "submit an aggregation job to a coordinator (--wait to follow it)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stdout, stderr := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
			spec, err := jobSpec(&jf)
			if err != nil {
				return err
			}
			if window < 0 || (window > 0 && window%time.Second != 0) {
				return usageErrorf("--window %v: want a positive whole number of seconds", window)
			}
			if key == "" {
				key = coordinator.NewIdempotencyKey()
			} else if err := cluster.ValidateID("idempotency key", key); err != nil {
				return usageErrorf("--idempotency-key: %w", err)
			}
			c, err := cf.dial()
			if err != nil {
				return err
			}
			defer c.Close()
			if window > 0 {
				return submitWindows(ctx, c, spec, window, key, wait, stdout, stderr)
			}
			j, err := c.SubmitWithKey(ctx, spec, key)
			if err != nil {
				if errors.Is(err, coordinator.ErrUnreachable) {
					return fmt.Errorf("%w\nthe job may have been recorded: submit again with --idempotency-key %s to get it rather than a second job", err, key)
				}
				return err
			}
			if !wait {
				fmt.Fprintln(stdout, j.GetId())
				return nil
			}
			fmt.Fprintf(stderr, "submitted job %s\n", j.GetId())
			return waitJob(ctx, c, j.GetId(), stdout, stderr)
		},
	}
	fs := cmd.Flags()
	cf.add(fs)
	jf.AddFlags(fs, "lake URI (default: the coordinator's --lake)")
	fs.BoolVar(&wait, "wait", false, "follow the job with a progress display until it ends; exit non-zero unless it succeeds")
	fs.DurationVar(&window, "window", 0, "backfill: one job per window of this length (aligned to the epoch), each under <out>/window=<start>")
	fs.StringVar(&key, "idempotency-key", "", "a key naming this submission, so that submitting again with it does not make a second job (default: a random one; with --window, each window's key is KEY.<window start, Unix seconds>)")
	return cmd
}

// submitWindows submits one job per window of spec's range, then, with
// wait, follows them in order; it fails if any job does not succeed. With
// wait, a cluster that holds as many unfinished jobs as it takes
// (RESOURCE_EXHAUSTED) is waited for: the oldest job submitted is followed
// to its end, then the window is submitted again. Submits refused for the
// caller's submit rate are paced by the client, with or without wait
// (Client.SubmitWithKey waits the delay the coordinator names).
func submitWindows(ctx context.Context, c *coordinator.Client, spec *pb.JobSpec, window time.Duration, key string, wait bool, stdout, stderr io.Writer) error {
	var ids, failed []string
	followed := 0
	follow := func() error {
		id := ids[followed]
		followed++
		if err := waitJob(ctx, c, id, stdout, stderr); err != nil {
			if ctx.Err() != nil {
				return err
			}
			failed = append(failed, fmt.Sprintf("%s: %v", id, err))
		}
		return nil
	}
	for _, w := range coordinator.SplitWindows(spec.GetFrom().AsTime(), spec.GetTo().AsTime(), window) {
		ws := proto.Clone(spec).(*pb.JobSpec)
		ws.From, ws.To = timestamppb.New(w[0]), timestamppb.New(w[1])
		ws.OutUri = coordinator.WindowOut(spec.GetOutUri(), w[0])
		for {
			j, err := c.SubmitWithKey(ctx, ws, key+"."+strconv.FormatInt(w[0].Unix(), 10))
			if err == nil {
				ids = append(ids, j.GetId())
				if !wait {
					fmt.Fprintln(stdout, j.GetId())
				}
				break
			}
			if !wait || status.Code(err) != codes.ResourceExhausted || followed == len(ids) {
				return fmt.Errorf("window %s: %w\n%d windows before it were submitted; submit again with --idempotency-key %s to go on without submitting them twice",
					w[0].Format(time.RFC3339), err, len(ids), key)
			}
			if followed == 0 {
				fmt.Fprintf(stderr, "the cluster is full: following the jobs submitted so far as they end\n")
			}
			if err := follow(); err != nil {
				return err
			}
		}
	}
	if !wait {
		return nil
	}
	fmt.Fprintf(stderr, "submitted %d jobs, one per %v window\n", len(ids), window)
	for followed < len(ids) {
		if err := follow(); err != nil {
			return err
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%d of %d window jobs failed:\n  %s", len(failed), len(ids), strings.Join(failed, "\n  "))
	}
	return nil
}
