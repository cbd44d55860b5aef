package ingest

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/dataco/clickstream/internal/event"
)

// TestRejectedReasonsStartAtZero: every rejection reason is exported from
// the start, so that an alert's rate sees a reason's first rejections.
func TestRejectedReasonsStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	newMetrics(reg)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "clickstream_ingest_records_rejected_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && m.GetCounter().GetValue() == 0 {
					got[l.GetValue()] = true
				}
			}
		}
	}
	for _, r := range event.Reasons() {
		if !got[string(r)] {
			t.Errorf("reason %s is not exported at 0", r)
		}
	}
}

// TestLagGaugeLeavesWithThePartition: a partition consumer reports its
// partition's lag while it runs and removes the series when it stops, so
// that the lag of a partition that moved to another process is not counted
// twice.
func TestLagGaugeLeavesWithThePartition(t *testing.T) {
	cfg := NewConfig()
	cfg.FlushRecords, cfg.FlushBytes, cfg.FlushInterval = 1<<30, 1<<30, time.Hour
	p := newPartitionTest(t, cfg, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(p.k.sink.metrics.lag)
	series := func() map[string]float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			for _, m := range mf.GetMetric() {
				var name string
				for _, l := range m.GetLabel() {
					name += l.GetName() + "=" + l.GetValue() + ","
				}
				out[name] = m.GetGauge().GetValue()
			}
		}
		return out
	}
	wait := p.start(t, 0)
	p.send(0, 10, testMessage)
	waitFor(t, 20*time.Second, "10 records consumed", func() bool { return p.k.totals.consumed.Load() == 10 })
	// claimFeed's high-water mark is 1<<40: the lag after offset 9.
	if got, want := series(), map[string]float64{"partition=0,topic=t,": 1<<40 - 10}; len(got) != 1 || got["partition=0,topic=t,"] != want["partition=0,topic=t,"] {
		t.Fatalf("lag while consuming: %v, want %v", got, want)
	}
	p.cancel()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	if got := series(); len(got) != 0 {
		t.Fatalf("lag after the partition stopped: %v, want no series", got)
	}
}
