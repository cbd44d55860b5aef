package chaos

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// Report is the outcome of a harness session.
type Report struct {
	Seed     uint64
	Events   int
	Windows  int
	Baseline time.Duration // the fault-free run's time
	Outcomes []*Outcome    // the baseline first
	Skipped  []string
}

// Row is the table line of one fault class.
type Row struct {
	Class            string
	Injections, Runs int
	// TimeRatio is the mean run time over the fault-free run's.
	TimeRatio        float64
	Identical        bool
	Lost, Duplicated int64
	StatusMismatches int
	Unfinished       int
	AuditDiffs       int
	Errors           int
}

// Rows aggregates the outcomes per class, in the order first run.
func (r *Report) Rows() []Row {
	var rows []Row
	idx := map[string]int{}
	for _, o := range r.Outcomes {
		i, ok := idx[o.Class]
		if !ok {
			i = len(rows)
			idx[o.Class] = i
			rows = append(rows, Row{Class: o.Class, Identical: true})
		}
		row := &rows[i]
		row.Runs++
		row.Injections += o.Injections
		if r.Baseline > 0 {
			row.TimeRatio += (float64(o.Duration)/float64(r.Baseline) - row.TimeRatio) / float64(row.Runs)
		}
		row.Identical = row.Identical && o.Identical && o.Err == nil
		row.Lost += o.Lost
		row.Duplicated += o.Duplicated
		row.StatusMismatches += o.StatusMismatches
		row.Unfinished += o.Unfinished
		row.AuditDiffs += o.AuditDiffs
		if o.Err != nil {
			row.Errors++
		}
	}
	return rows
}

// Failed returns the outcomes that found a fault of the platform or could
// not run.
func (r *Report) Failed() []*Outcome {
	return slices.DeleteFunc(slices.Clone(r.Outcomes), func(o *Outcome) bool { return o.OK() })
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "**no**"
}

// WriteMarkdown writes the seed, the table per fault class and the runs
// that found something, as Markdown.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Chaos run: seed %d (rerun with CHAOS_SEED=%d), %d events per run, %d windows of %v, fault-free run %v.\n\n",
		r.Seed, r.Seed, r.Events, r.Windows, WindowLength, r.Baseline.Round(100*time.Millisecond))
	b.WriteString("| fault class | injections | runs | time vs fault-free | results identical | lost | duplicated | status mismatches | unfinished jobs | audit differences | harness errors |\n")
	b.WriteString("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range r.Rows() {
		fmt.Fprintf(&b, "| %s | %d | %d | %.2f× | %s | %d | %d | %d | %d | %d | %d |\n", row.Class, row.Injections, row.Runs, row.TimeRatio,
			yesNo(row.Identical), row.Lost, row.Duplicated, row.StatusMismatches, row.Unfinished, row.AuditDiffs, row.Errors)
	}
	if len(r.Skipped) > 0 {
		fmt.Fprintf(&b, "\nNot run: %s.\n", strings.Join(r.Skipped, ", "))
	}
	if failed := r.Failed(); len(failed) > 0 {
		b.WriteString("\nRuns that found something (class, run seed, what):\n\n")
		for _, o := range failed {
			fmt.Fprintf(&b, "- `%s` (run seed %d): %s", o.Run, o.Seed, o.Summary())
			if o.Dir != "" {
				fmt.Fprintf(&b, " — logs in %s", o.Dir)
			}
			b.WriteString("\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
