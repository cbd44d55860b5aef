package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// harness runs the comparison.
type harness struct {
	cfg *Config
	log *slog.Logger
}

// roundTimeout bounds one process run.
const roundTimeout = 60 * time.Minute

func (h *harness) run(ctx context.Context) error {
	var all []*contender
	for _, c := range contenders() {
		if h.cfg.wants(c.name) {
			all = append(all, c)
		}
	}
	if err := h.checkTools(all); err != nil {
		return err
	}
	var results []Result
	for _, shape := range h.cfg.Shapes {
		d, err := h.land(ctx, shape)
		if err != nil {
			return fmt.Errorf("shape %s: %w", shape.Name, err)
		}
		results = append(results, h.shape(ctx, d, all)...)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	if err := writeJSON(h.cfg.Out, results); err != nil {
		return err
	}
	printTable(os.Stdout, results)
	if err := writePlots(h.cfg.Plots, results); err != nil {
		return err
	}
	h.log.Info("wrote", "json", jsonPath(h.cfg.Out), "plots", h.cfg.Plots)
	for _, r := range results {
		if r.Error != "" || !r.RowsEqual {
			h.log.Warn("not every contender matched clickstream's rows; see compare.json", "first", r.Contender, "shape", r.Shape)
			break
		}
	}
	return nil
}

// checkTools fails early when a contender needs what setup.sh installs.
func (h *harness) checkTools(cs []*contender) error {
	if _, err := os.Stat(h.cfg.Bin); err != nil {
		return fmt.Errorf("the clickstream binary: %w (make build)", err)
	}
	for _, c := range cs {
		if !c.python {
			continue
		}
		for _, p := range []struct{ name, path string }{{"BENCH_PYTHON", h.cfg.Python}, {"BENCH_SPARK_JAR", h.cfg.SparkJar}, {"BENCH_JAVA_HOME", h.cfg.JavaHome}} {
			if p.path == "" {
				return fmt.Errorf("%s is not set: run bench/compare/setup.sh (make bench-compare does)", p.name)
			}
			if _, err := os.Stat(p.path); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
		}
		break
	}
	return nil
}

// tally is one contender's rounds on one shape.
type tally struct {
	c      *contender
	res    Result
	rounds []time.Duration
	cpu    []time.Duration // the timed rounds' CPU times, if measured
	peak   int64
	failed bool
}

// shape runs every contender on one dataset: round 0 is the warm-up (its
// output is what is checked against clickstream's), then cfg.Rounds timed
// rounds, the contenders' order rotating from round to round.
func (h *harness) shape(ctx context.Context, d *dataset, cs []*contender) []Result {
	tallies := make([]*tally, len(cs))
	for i, c := range cs {
		check := "rows"
		if c.floor {
			check = "events"
		}
		tallies[i] = &tally{c: c, res: Result{Contender: c.name, Shape: d.Shape, Check: check, Events: d.Accepted, Note: c.about}}
	}
	var teardowns []func()
	defer func() {
		for _, t := range teardowns {
			t()
		}
	}()
	for _, t := range tallies {
		if t.c.setup == nil {
			continue
		}
		td, err := t.c.setup(ctx, h, d)
		if err != nil {
			t.fail(h, err)
			continue
		}
		teardowns = append(teardowns, func() { t.peak = td() })
	}
	var reference []Row
	for r := 0; r <= h.cfg.Rounds; r++ {
		h.log.Info("round", "shape", d.Shape, "round", r, "warmup", r == 0)
		for i := range tallies {
			t := tallies[(i+r)%len(tallies)]
			if t.failed || (t.c.session && r > 0) {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, roundTimeout)
			m, o, err := t.c.round(rctx, h, d, r)
			cancel()
			if err != nil {
				t.fail(h, err)
				continue
			}
			t.peak = max(t.peak, m.MaxRSS)
			if o.note != "" && !strings.Contains(t.res.Note, o.note) {
				t.res.Note += "; " + o.note
			}
			if t.c.session {
				for _, s := range o.seconds {
					t.rounds = append(t.rounds, time.Duration(s*float64(time.Second)))
				}
			} else if r > 0 {
				t.rounds = append(t.rounds, m.Wall)
				if m.CPU > 0 {
					t.cpu = append(t.cpu, m.CPU)
				}
			}
			h.log.Info("ran", "contender", t.c.name, "shape", d.Shape, "round", r, "wall", m.Wall.Round(time.Millisecond),
				"cpu", m.CPU.Round(time.Millisecond), "peak_mib", int(mib(m.MaxRSS)))
			if r == 0 {
				if reference == nil && strings.HasPrefix(t.c.name, "run-") {
					reference = o.rows // clickstream run --workers 1 (the first contender of round 0)
				}
				h.check(t, d, o, reference)
			}
		}
		if ctx.Err() != nil {
			break
		}
	}
	for _, td := range teardowns {
		td()
	}
	teardowns = nil
	out := make([]Result, len(tallies))
	for i, t := range tallies {
		t.res.summarize(t.rounds, t.cpu)
		t.res.PeakMiB = mib(t.peak)
		if t.c.setup != nil {
			t.res.Note += "; peak_mib: the sum of the coordinator's (with its embedded etcd) and the workers' peaks; cpu: the client's and the cluster's processes' during the round"
		}
		out[i] = t.res
	}
	return out
}

// check records whether a round-0 outcome equals clickstream's.
func (h *harness) check(t *tally, d *dataset, o outcome, reference []Row) {
	if t.c.floor {
		t.res.RowsEqual = o.events == d.Accepted
		if !t.res.RowsEqual {
			h.log.Warn("floor read another number of events", "contender", t.c.name, "shape", d.Shape, "read", o.events, "table", d.Accepted)
		}
		return
	}
	if reference == nil {
		t.res.RowsEqual = false
		t.res.Error = "no reference rows (clickstream run failed)"
		return
	}
	diff := compareRows(reference, o.rows)
	t.res.RowsEqual = diff.Equal()
	if !diff.Equal() {
		t.res.Note += "; rows differ: " + diff.String()
		h.log.Warn("rows differ from clickstream's", "contender", t.c.name, "shape", d.Shape, "diff", diff.String())
	} else {
		h.log.Info("rows equal clickstream's", "contender", t.c.name, "shape", d.Shape, "rows", len(o.rows))
	}
}

func (t *tally) fail(h *harness, err error) {
	t.failed = true
	t.res.RowsEqual = false
	t.res.Error = err.Error()
	if errors.Is(err, context.DeadlineExceeded) {
		t.res.Error = "timed out after " + roundTimeout.String() + ": " + err.Error()
	}
	h.log.Error("contender failed", "contender", t.c.name, "shape", t.res.Shape, "err", err)
}
