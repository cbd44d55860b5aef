package ui

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

func (h *Handler) funcs() template.FuncMap {
	return template.FuncMap{
		"ts": func(t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return t.UTC().Format("2006-01-02 15:04:05Z")
		},
		"ago": func(now, t time.Time) string {
			if t.IsZero() {
				return "-"
			}
			return roundDur(now.Sub(t)) + " ago"
		},
		"dur":  roundDur,
		"took": took,
		"bytes": func(n int64) string {
			return byteSize(n)
		},
		"window": func(from, to time.Time) string {
			return from.UTC().Format("2006-01-02 15:04") + " – " + to.UTC().Format("15:04")
		},
		"indexed": func(s string) string {
			switch {
			case s == "":
				return "-"
			case s == "ok":
				return "yes"
			case strings.HasPrefix(s, "error"):
				return "failed"
			}
			return s
		},
		"lag": func(now, wm time.Time) string {
			if wm.IsZero() {
				return "-"
			}
			return roundDur(now.Sub(wm))
		},
	}
}

// took is how long something ran: from start to end, or to now while it
// runs.
func took(now, start, end time.Time) string {
	if start.IsZero() {
		return "-"
	}
	if end.IsZero() {
		end = now
	}
	return roundDur(end.Sub(start))
}

func roundDur(d time.Duration) string {
	switch {
	case d < 0:
		return "0s"
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < 10*time.Second:
		return d.Round(100 * time.Millisecond).String()
	case d < time.Hour:
		return d.Round(time.Second).String()
	}
	return d.Round(time.Minute).String()
}

// byteSize formats n bytes in binary units: 512 B, 1.5 MiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 5; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// jobView is the data of the job page: the job, its tasks and the
// timeline of their attempts.
type jobView struct {
	*JobDetail
	Timeline timeline
}

// timeline lays out the attempts of a job's tasks on a time axis, one row
// per task that ran, like Spark's event timeline: SVG coordinates in a
// Width × (rows × RowHeight) box.
type timeline struct {
	Width, Height, RowHeight int
	Start, End               time.Time
	Rows                     []timelineRow
	Ticks                    []timelineTick
	Omitted                  int // tasks that ran, left out of the timeline
}

type timelineRow struct {
	Y     int
	Label string
	Bars  []timelineBar
}

type timelineBar struct {
	X, W  float64
	Class string // outcome
	Title string
	Label string // the worker, on bars wide enough for it
}

type timelineTick struct {
	X     float64
	Label string
}

// Bounds of the timeline.
const (
	timelineWidth   = 960
	timelineLabel   = 80 // px left of the axis for the row labels
	timelineRowH    = 16
	timelineMaxRows = 200
)

// outcomes are the attempt outcomes the timeline has a style for.
var outcomes = map[string]bool{"running": true, "ok": true, "duplicate": true, "failed": true, "lost": true, "cancelled": true}

func newJobView(d *JobDetail, now time.Time) *jobView {
	v := &jobView{JobDetail: d}
	tl := &v.Timeline
	tl.Width, tl.RowHeight = timelineWidth, timelineRowH
	// The axis spans the job's run: its start (or its first attempt's) to
	// its end, or now while it runs.
	start, end := d.Job.Started, d.Job.Finished
	for _, t := range d.Tasks {
		for _, a := range t.Runs {
			if start.IsZero() || a.Started.Before(start) {
				start = a.Started
			}
			if !a.Ended.IsZero() && !d.Job.Terminal() && a.Ended.After(end) {
				end = a.Ended
			}
		}
	}
	if end.IsZero() || !d.Job.Terminal() {
		end = now
	}
	if start.IsZero() || !end.After(start) {
		return v
	}
	tl.Start, tl.End = start, end
	span := float64(end.Sub(start))
	plot := float64(timelineWidth - timelineLabel)
	x := func(t time.Time) float64 {
		f := float64(t.Sub(start)) / span
		return timelineLabel + plot*min(1, max(0, f))
	}
	for _, t := range d.Tasks {
		if len(t.Runs) == 0 {
			continue
		}
		if len(tl.Rows) == timelineMaxRows {
			tl.Omitted++
			continue
		}
		row := timelineRow{Y: len(tl.Rows) * timelineRowH, Label: fmt.Sprintf("task %d", t.Task)}
		for _, a := range t.Runs {
			ended := a.Ended
			if ended.IsZero() {
				ended = now
			}
			x0, x1 := x(a.Started), x(ended)
			class := a.Outcome
			if !outcomes[class] {
				class = "other"
			}
			title := fmt.Sprintf("task %d attempt %d on %s: %s, %s", t.Task, a.N, a.Worker, a.Outcome, roundDur(ended.Sub(a.Started)))
			if a.Backup {
				title += " (backup)"
			}
			bar := timelineBar{X: x0, W: max(2, x1-x0), Class: class, Title: title}
			if bar.W >= float64(8*len(a.Worker)+8) {
				bar.Label = a.Worker
			}
			row.Bars = append(row.Bars, bar)
		}
		tl.Rows = append(tl.Rows, row)
	}
	tl.Height = len(tl.Rows)*timelineRowH + 20
	for i := range 5 {
		f := float64(i) / 4
		at := start.Add(time.Duration(f * span))
		tl.Ticks = append(tl.Ticks, timelineTick{X: timelineLabel + plot*f, Label: "+" + roundDur(at.Sub(start))})
	}
	return v
}
