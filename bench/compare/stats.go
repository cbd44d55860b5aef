package main

import (
	"slices"
	"time"
)

// Result is one contender on one shape: a line of compare.json.
type Result struct {
	Contender string  `json:"contender"`
	Shape     string  `json:"shape"`
	MedianS   float64 `json:"median_s"`
	MinS      float64 `json:"min_s"`
	MaxS      float64 `json:"max_s"`
	PeakMiB   float64 `json:"peak_mib"`
	RowsEqual bool    `json:"rows_equal"`
	// Check says what RowsEqual compared: "rows" (every row against
	// clickstream run --workers 1's) or "events" (a floor: the events read
	// against the table's count).
	Check   string    `json:"check"`
	Seconds []float64 `json:"seconds"` // the timed rounds, in order
	// MedianCPUS is the median over the timed rounds of the CPU time
	// (user + system) of the contender's processes; 0 when unknown (a
	// session's rounds run inside one process).
	MedianCPUS float64   `json:"median_cpu_s"`
	CPUSeconds []float64 `json:"cpu_seconds,omitempty"`
	Events     int64     `json:"events"` // events in the table
	Note       string    `json:"note,omitempty"`
	Error      string    `json:"error,omitempty"`
}

// summarize fills the median, min and max from the rounds' wall times,
// and the median CPU time from their CPU times (none: unknown).
func (r *Result) summarize(rounds, cpu []time.Duration) {
	r.Seconds = make([]float64, len(rounds))
	for i, d := range rounds {
		r.Seconds[i] = d.Seconds()
	}
	r.MedianS, r.MinS, r.MaxS = stats(r.Seconds)
	r.CPUSeconds = nil
	for _, d := range cpu {
		r.CPUSeconds = append(r.CPUSeconds, d.Seconds())
	}
	r.MedianCPUS, _, _ = stats(r.CPUSeconds)
}

// CPUPerEvent is the median CPU time per event of the table, in
// microseconds; 0 when unknown.
func (r *Result) CPUPerEvent() float64 {
	if r.Events == 0 {
		return 0
	}
	return r.MedianCPUS / float64(r.Events) * 1e6
}

// stats returns the median (the mean of the middle two for an even count),
// minimum and maximum of xs; zeros for none.
func stats(xs []float64) (median, lo, hi float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	median = s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return median, s[0], s[n-1]
}

func mib(bytes int64) float64 { return float64(bytes) / (1 << 20) }
