package coordinator

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/dataco/clickstream/internal/lake"
)

// lakeView is what a scheduler tick reads of the lake: the sources'
// watermarks and the committed data; with a table over the lake, also
// what its snapshots appended (table).
type lakeView struct {
	watermarks map[string]lake.Watermark
	files      iter.Seq[lake.DataFile]
	table      *lake.TableInputs
}

// maxWatermarkSources bounds the sources whose watermarks a tick reads.
const maxWatermarkSources = 1 << 16

// lakeView reads the lake for a tick; ok is false if there is no lake
// yet. With an InputTracker and a table over the lake, it reads the
// sources' watermark records and the table's snapshots: O(sources + new
// snapshots) of reads a tick. Otherwise it reads the lake's manifests,
// each once (snaps keeps them).
func (c *Coordinator) lakeView(ctx context.Context, store lake.Store, snaps **lake.SnapshotReader) (lakeView, bool, error) {
	if c.cfg.Inputs != nil {
		in, ok, err := c.cfg.Inputs.TableInputs(ctx, c.cfg.Lake, store)
		if err != nil {
			return lakeView{}, false, fmt.Errorf("schedule: %w", err)
		}
		if ok {
			wms, _, err := lake.ReadWatermarks(ctx, store, maxWatermarkSources)
			if err != nil {
				return lakeView{}, false, fmt.Errorf("schedule: %w", err)
			}
			v := lakeView{watermarks: make(map[string]lake.Watermark, len(wms)), table: &in}
			for _, w := range wms {
				v.watermarks[w.Source] = w
			}
			v.files = func(yield func(lake.DataFile) bool) {
				for _, f := range in.Files {
					if !yield(f) {
						return
					}
				}
			}
			return v, true, nil
		}
	}
	if *snaps == nil {
		*snaps = lake.NewSnapshotReader(store)
	}
	sn, err := (*snaps).Read(ctx)
	if errors.Is(err, lake.ErrNotExist) {
		return lakeView{}, false, nil // no lake yet
	}
	if err != nil {
		return lakeView{}, false, err
	}
	return lakeView{watermarks: sn.Watermarks(), files: snapshotFiles(sn)}, true, nil
}

// snapshotFiles yields the data files of the lake's manifests.
func snapshotFiles(sn *lake.Snapshot) iter.Seq[lake.DataFile] {
	return func(yield func(lake.DataFile) bool) {
		for _, m := range sn.Manifests {
			for _, f := range m.Files {
				if !yield(f) {
					return
				}
			}
		}
	}
}

// earliest is the time of the lake's earliest committed event.
func (v lakeView) earliest() (time.Time, bool) {
	lo, ok := int64(math.MaxInt64), false
	for f := range v.files {
		lo, ok = min(lo, f.MinTs), true
	}
	return time.UnixMilli(lo).UTC(), ok
}

// inputs tells, for every window from first to until, what the window's
// job reads — the files overlapping the window extended by the look-ahead
// (the session timeout), and their events — and whether that changed
// since a run (late data), in one pass over the files (a file spans an
// hour: a few windows) rather than a pass per window.
//
// From the lake's manifests, a window's input is its files and events:
// late data adds files. From a table, it is the table's sequence number
// when the window was run, and it changed when a later snapshot appended
// a file overlapping the window; compactions append nothing. Appends the
// table no longer has (expired before a tick saw them: the scheduler was
// down for longer than the table's snapshot retention) go unnoticed.
func (v lakeView) inputs(first time.Time, window, ahead time.Duration, until time.Time) windowInputs {
	in := windowInputs{first: first.UnixMilli(), window: window.Milliseconds(), of: make(map[int64]windowInput)}
	last := lake.FloorDiv(until.UnixMilli()-in.first, in.window)
	// overlapping calls fn with the windows a file overlaps: window k reads
	// [first+k·W, first+(k+1)·W+ahead), which the file overlaps when
	// MaxTs >= first+k·W and MinTs < first+(k+1)·W+ahead.
	overlapping := func(f lake.DataFile, fn func(k int64)) {
		lo := max(0, lake.FloorDiv(f.MinTs-in.first-ahead.Milliseconds(), in.window))
		hi := min(last, lake.FloorDiv(f.MaxTs-in.first, in.window))
		for k := lo; k <= hi; k++ {
			fn(k)
		}
	}
	for f := range v.files {
		overlapping(f, func(k int64) {
			x := in.of[k]
			x.files++
			x.events += f.Events
			in.of[k] = x
		})
	}
	if t := v.table; t != nil {
		in.table, in.seq, in.appended = true, t.Seq, make(map[int64]int64)
		for _, a := range t.Appends {
			for _, f := range a.Files {
				overlapping(f, func(k int64) { in.appended[k] = max(in.appended[k], a.Seq) })
			}
		}
	}
	return in
}

// windowInputs is lakeView.inputs.
type windowInputs struct {
	first, window int64 // ms
	of            map[int64]windowInput
	// From a table: its sequence number, and per window the highest
	// sequence number of a snapshot that appended a file overlapping it.
	table    bool
	seq      int64
	appended map[int64]int64
}

type windowInput struct{ files, events int64 }

// tableInputPrefix begins the input of a window run with its input told
// by a table: the table's sequence number then.
const tableInputPrefix = "table-seq="

// at returns the input and the event count of the window starting at
// from, one of the windows the inputs were made for.
func (in windowInputs) at(from time.Time) (string, int64) {
	x := in.of[in.index(from)]
	if in.table {
		return tableInputPrefix + strconv.FormatInt(in.seq, 10), x.events
	}
	return fmt.Sprintf("files=%d,events=%d", x.files, x.events), x.events
}

// changed tells whether the input of the window starting at from changed
// since it was run with input old.
func (in windowInputs) changed(old string, from time.Time) bool {
	if !in.table {
		now, _ := in.at(from)
		return old != now
	}
	seq, err := strconv.ParseInt(strings.TrimPrefix(old, tableInputPrefix), 10, 64)
	if err != nil || !strings.HasPrefix(old, tableInputPrefix) {
		return true // no input recorded (a failed run to retry)
	}
	return in.appended[in.index(from)] > seq
}

func (in windowInputs) index(from time.Time) int64 {
	return lake.FloorDiv(from.UnixMilli()-in.first, in.window)
}

// inputKind is how an input was told: "files" (the lake's manifests) or
// "table-seq" (a table's snapshots); "" for none.
func inputKind(input string) string {
	kind, _, _ := strings.Cut(input, "=")
	return kind
}

// newWindowInputs is the inputs of a lake snapshot's windows.
func newWindowInputs(sn *lake.Snapshot, first time.Time, window, ahead time.Duration, until time.Time) windowInputs {
	return lakeView{files: snapshotFiles(sn)}.inputs(first, window, ahead, until)
}
