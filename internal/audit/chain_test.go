package audit

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/dataco/clickstream/internal/lake"
)

func m(source string, seq uint64, start, end int64) *lake.Manifest {
	return &lake.Manifest{Source: source, Seq: seq, Start: start, End: end}
}

func TestCheckChains(t *testing.T) {
	for _, tc := range []struct {
		name      string
		manifests []*lake.Manifest
		issues    []ChainIssue
		chains    []Chain
	}{
		{name: "empty lake"},
		{
			name:      "contiguous, any order, two sources",
			manifests: []*lake.Manifest{m("kafka.t.1", 2, 10, 25), m("kafka.t.0", 1, 0, 10), m("kafka.t.1", 1, 0, 10), m("kafka.t.0", 2, 10, 10), m("kafka.t.0", 3, 10, 30)},
			chains: []Chain{
				{Source: "kafka.t.0", Commits: 3, LastSeq: 3, Start: 0, End: 30, Positions: 30},
				{Source: "kafka.t.1", Commits: 2, LastSeq: 2, Start: 0, End: 25, Positions: 25},
			},
		},
		{
			name:      "a source starting past 0 (retention) is not a gap",
			manifests: []*lake.Manifest{m("kafka.t.0", 1, 500, 600), m("kafka.t.0", 2, 600, 700)},
			chains:    []Chain{{Source: "kafka.t.0", Commits: 2, LastSeq: 2, Start: 500, End: 700, Positions: 200}},
		},
		{
			name:      "a deleted manifest in the middle: a missing number and a gap",
			manifests: []*lake.Manifest{m("file.abc", 1, 0, 100), m("file.abc", 3, 200, 300)},
			issues: []ChainIssue{
				{Source: "file.abc", Kind: IssueSeq, Seq: 3, Prev: 1},
				{Source: "file.abc", Kind: IssueGap, Seq: 3, Prev: 1, From: 100, To: 200},
			},
			chains: []Chain{{Source: "file.abc", Commits: 2, LastSeq: 3, Start: 0, End: 300, Positions: 200}},
		},
		{
			name:      "the first manifest deleted",
			manifests: []*lake.Manifest{m("kafka.t.0", 2, 100, 200)},
			issues:    []ChainIssue{{Source: "kafka.t.0", Kind: IssueSeq, Seq: 2}},
			chains:    []Chain{{Source: "kafka.t.0", Commits: 1, LastSeq: 2, Start: 100, End: 200, Positions: 100}},
		},
		{
			name:      "two manifests in a row deleted",
			manifests: []*lake.Manifest{m("kafka.t.0", 1, 0, 10), m("kafka.t.0", 4, 40, 50)},
			issues: []ChainIssue{
				{Source: "kafka.t.0", Kind: IssueSeq, Seq: 4, Prev: 1},
				{Source: "kafka.t.0", Kind: IssueGap, Seq: 4, Prev: 1, From: 10, To: 40},
			},
			chains: []Chain{{Source: "kafka.t.0", Commits: 2, LastSeq: 4, Start: 0, End: 50, Positions: 20}},
		},
		{
			name:      "overlap",
			manifests: []*lake.Manifest{m("kafka.t.0", 1, 0, 100), m("kafka.t.0", 2, 90, 150)},
			issues:    []ChainIssue{{Source: "kafka.t.0", Kind: IssueOverlap, Seq: 2, Prev: 1, From: 90, To: 100}},
			chains:    []Chain{{Source: "kafka.t.0", Commits: 2, LastSeq: 2, Start: 0, End: 150, Positions: 160}},
		},
		{
			name:      "gap with consecutive numbers",
			manifests: []*lake.Manifest{m("kafka.t.0", 1, 0, 100), m("kafka.t.0", 2, 101, 150)},
			issues:    []ChainIssue{{Source: "kafka.t.0", Kind: IssueGap, Seq: 2, Prev: 1, From: 100, To: 101}},
			chains:    []Chain{{Source: "kafka.t.0", Commits: 2, LastSeq: 2, Start: 0, End: 150, Positions: 149}},
		},
		{
			name:      "end before start",
			manifests: []*lake.Manifest{m("kafka.t.0", 1, 50, 40)},
			issues:    []ChainIssue{{Source: "kafka.t.0", Kind: IssueBadRange, Seq: 1, From: 50, To: 40}},
			chains:    []Chain{{Source: "kafka.t.0", Commits: 1, LastSeq: 1, Start: 50, End: 40}},
		},
		{
			name:      "issues of one source do not touch another",
			manifests: []*lake.Manifest{m("a", 1, 0, 5), m("a", 2, 6, 9), m("b", 1, 0, 5), m("b", 2, 5, 9)},
			issues:    []ChainIssue{{Source: "a", Kind: IssueGap, Seq: 2, Prev: 1, From: 5, To: 6}},
			chains: []Chain{
				{Source: "a", Commits: 2, LastSeq: 2, Start: 0, End: 9, Positions: 8},
				{Source: "b", Commits: 2, LastSeq: 2, Start: 0, End: 9, Positions: 9},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			chains, issues := CheckChains(tc.manifests)
			if !slices.Equal(issues, tc.issues) {
				t.Errorf("issues %+v, want %+v", issues, tc.issues)
			}
			if !slices.EqualFunc(chains, tc.chains, func(a, b Chain) bool {
				return a.Source == b.Source && a.Commits == b.Commits && a.LastSeq == b.LastSeq && a.Start == b.Start && a.End == b.End && a.Positions == b.Positions
			}) {
				t.Errorf("chains %+v, want %+v", chains, tc.chains)
			}
			for _, i := range issues {
				if i.String() == "" || strings.Contains(i.String(), "manifests 0") {
					t.Errorf("issue %+v: description %q", i, i)
				}
			}
		})
	}
}

func TestReportErrNamesFirstDiff(t *testing.T) {
	rep := &Report{Hops: []Hop{
		{Name: HopPositions, Status: OK},
		{Name: HopEventsTable, Status: Behind},
		{Name: HopJob, Status: Skipped},
		{Name: HopElasticsearch, Status: Diff, Detail: "9 clicks in 2 documents", Problems: []string{"x"}},
		{Name: HopAggregatesTable, Status: Diff},
	}}
	if err := rep.Err(); !errors.Is(err, ErrDiff) || err.Error() != `hop "elasticsearch" differs: 9 clicks in 2 documents; x` {
		t.Fatalf("Err() = %v", err)
	}
	rep.Hops[3].Status = OK
	rep.Hops[4].Status = OK
	if err := rep.Err(); err != nil {
		t.Fatalf("Err() = %v, want nil: BEHIND and SKIPPED do not fail", err)
	}
}
