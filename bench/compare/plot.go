package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// Plot files under the plots folder, which REPORT.md embeds.
const (
	TimePlot = "compare-time.png"
	RSSPlot  = "compare-rss.png"
)

// writePlots draws the median wall time (with min–max bars, log scale)
// and the peak RSS of every contender, one series per shape.
func writePlots(dir string, results []Result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	names, shapes := axes(results)
	if len(names) == 0 {
		return nil
	}
	if err := timePlot(filepath.Join(dir, TimePlot), names, shapes, results); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err := rssPlot(filepath.Join(dir, RSSPlot), names, shapes, results); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}

// axes returns the contenders and shapes of the successful results, in
// their order of appearance.
func axes(results []Result) (names, shapes []string) {
	for _, r := range results {
		if r.Error != "" {
			continue
		}
		if !slices.Contains(names, r.Contender) {
			names = append(names, r.Contender)
		}
		if !slices.Contains(shapes, r.Shape) {
			shapes = append(shapes, r.Shape)
		}
	}
	return names, shapes
}

func find(results []Result, contender, shape string) (Result, bool) {
	for _, r := range results {
		if r.Contender == contender && r.Shape == shape && r.Error == "" {
			return r, true
		}
	}
	return Result{}, false
}

// offset spreads the shapes' series around each contender's position.
func offset(i, n int) float64 { return (float64(i) - float64(n-1)/2) * 0.25 }

func newPlot(title, ylabel string, names []string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Y.Label.Text = ylabel
	p.NominalX(names...)
	p.X.Tick.Label.Rotation = 0.6
	p.X.Tick.Label.XAlign = draw.XRight
	p.X.Tick.Label.YAlign = draw.YCenter
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

func timePlot(path string, names, shapes []string, results []Result) error {
	p := newPlot("Aggregation job: wall time per round (median, min–max)", "seconds (log scale)", names)
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	lo, hi := 0.0, 0.0
	for si, shape := range shapes {
		var pts plotter.XYs
		var errs plotter.YErrors
		for i, n := range names {
			r, ok := find(results, n, shape)
			if !ok || r.MedianS <= 0 {
				continue
			}
			pts = append(pts, plotter.XY{X: float64(i) + offset(si, len(shapes)), Y: r.MedianS})
			if lo == 0 || r.MinS < lo {
				lo = r.MinS
			}
			hi = max(hi, r.MaxS)
			errs = append(errs, struct{ Low, High float64 }{r.MedianS - r.MinS, r.MaxS - r.MedianS})
		}
		if len(pts) == 0 {
			continue
		}
		s, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		s.GlyphStyle.Color = plotutil.Color(si)
		s.GlyphStyle.Shape = plotutil.Shape(si)
		s.GlyphStyle.Radius = vg.Points(3.5)
		eb, err := plotter.NewYErrorBars(struct {
			plotter.XYer
			plotter.YErrorer
		}{pts, errs})
		if err != nil {
			return err
		}
		eb.LineStyle.Color = plotutil.Color(si)
		p.Add(s, eb)
		p.Legend.Add(shape, s)
	}
	if lo > 0 { // room above and below the extremes
		p.Y.Min, p.Y.Max = lo/1.5, hi*1.5
	}
	return p.Save(9*vg.Inch, 5*vg.Inch, path)
}

func rssPlot(path string, names, shapes []string, results []Result) error {
	p := newPlot("Peak resident memory (max RSS)", "MiB", names)
	w := vg.Points(14)
	for si, shape := range shapes {
		vals := make(plotter.Values, len(names))
		for i, n := range names {
			if r, ok := find(results, n, shape); ok {
				vals[i] = r.PeakMiB
			}
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		b.Color = plotutil.Color(si)
		b.LineStyle.Color = color.Black
		b.LineStyle.Width = vg.Points(0.5)
		b.Offset = vg.Length(float64(si)-float64(len(shapes)-1)/2) * w
		p.Add(b)
		p.Legend.Add(shape, b)
	}
	return p.Save(9*vg.Inch, 5*vg.Inch, path)
}
