package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"unicode/utf8"
)

func jsonPath(out string) string { return filepath.Join(out, "compare.json") }

// writeJSON writes the results as compare.json under out.
func writeJSON(out string, results []Result) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(jsonPath(out), append(data, '\n'), 0o644)
}

// baseline is the contender the table's ratios are relative to.
const baseline = "run-w2"

// printTable writes the results as a Markdown table: per shape, each
// contender's median, min and max wall time, the median's ratio to
// clickstream run --workers 2's, the peak RSS and whether its rows equal
// clickstream's.
func printTable(w io.Writer, results []Result) {
	base := map[string]float64{}
	for _, r := range results {
		if r.Contender == baseline && r.Error == "" {
			base[r.Shape] = r.MedianS
		}
	}
	rows := [][]string{{"shape", "contender", "median s", "min s", "max s", "× run-w2", "CPU s", "µs CPU/event", "peak MiB", "rows equal"}}
	for _, r := range results {
		eq := "yes"
		switch {
		case r.Error != "":
			eq = "FAILED"
		case !r.RowsEqual:
			eq = "NO"
		case r.Check == "events":
			eq = "yes (events)"
		}
		if r.Error != "" {
			rows = append(rows, []string{r.Shape, r.Contender, "–", "–", "–", "–", "–", "–", "–", eq})
			continue
		}
		ratio := "–"
		if b := base[r.Shape]; b > 0 {
			ratio = fmt.Sprintf("%.2f", r.MedianS/b)
		}
		cpu, perEvent := "–", "–"
		if r.MedianCPUS > 0 {
			cpu, perEvent = fmt.Sprintf("%.2f", r.MedianCPUS), fmt.Sprintf("%.2f", r.CPUPerEvent())
		}
		rows = append(rows, []string{r.Shape, r.Contender, fmt.Sprintf("%.2f", r.MedianS), fmt.Sprintf("%.2f", r.MinS),
			fmt.Sprintf("%.2f", r.MaxS), ratio, cpu, perEvent, fmt.Sprintf("%.0f", r.PeakMiB), eq})
	}
	writeMarkdown(w, rows, 2)
}

// writeMarkdown writes a Markdown table with padded columns; columns from
// rightFrom on are right-aligned.
func writeMarkdown(w io.Writer, rows [][]string, rightFrom int) {
	width := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	line := func(cells []string) {
		var b strings.Builder
		for i, c := range cells {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i >= rightFrom {
				c = pad + c
			} else {
				c += pad
			}
			b.WriteString("| " + c + " ")
		}
		fmt.Fprintln(w, b.String()+"|")
	}
	line(rows[0])
	sep := make([]string, len(width))
	for i, n := range width {
		sep[i] = strings.Repeat("-", n)
		if i >= rightFrom {
			sep[i] = strings.Repeat("-", n-1) + ":"
		}
	}
	line(sep)
	for _, r := range rows[1:] {
		line(r)
	}
}
