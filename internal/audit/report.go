package audit

import (
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
)

// WriteTable writes the report as a table, one line per hop, then the
// problems of each hop that has any, then the sources' lag when known.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintf(tw, "audit [%s, %s)\n", fmtTime(r.From), fmtTime(r.To))
	fmt.Fprintln(tw, "HOP\tEVENTS\tROWS\tSTATUS\tDETAIL")
	for _, h := range r.Hops {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", h.Name, count(h.Events), count(h.Rows), h.Status, h.Detail)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, h := range r.Hops {
		for _, p := range h.Problems {
			fmt.Fprintf(w, "  %s: %s\n", h.Name, p)
		}
	}
	lag := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	header := false
	for _, c := range r.Sources {
		if c.Lag == nil {
			continue
		}
		if !header {
			fmt.Fprintln(lag, "SOURCE\tCOMMITS\tPOSITIONS\tLAG\tAGAINST")
			header = true
		}
		fmt.Fprintf(lag, "%s\t%d\t[%d, %d)\t%d\t%s\n", c.Source, c.Commits, c.Start, c.End, *c.Lag, c.LagOf)
	}
	if err := lag.Flush(); err != nil {
		return err
	}
	var err error
	if r.OK {
		_, err = fmt.Fprintln(w, "all hops agree")
	} else {
		_, err = fmt.Fprintf(w, "first difference: %s\n", r.FirstDiff)
	}
	return err
}

func count(v *int64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatInt(*v, 10)
}
