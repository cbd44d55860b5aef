package audit

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/dataco/clickstream/internal/lake"
)

// Chain is the committed positions of one lake source: its commits form
// one contiguous range [Start, End) when Issues is empty.
type Chain struct {
	Source  string `json:"source"`
	Commits int    `json:"commits"`
	LastSeq uint64 `json:"last_seq"`
	Start   int64  `json:"start"` // the first commit's start
	End     int64  `json:"end"`   // the last commit's end
	// Positions is the number of positions the commits cover, End - Start
	// for an unbroken chain.
	Positions int64 `json:"positions"`
	// Lag is the source's positions not committed yet (Kafka: the end
	// offset or the group's committed offset minus End); nil if unknown.
	Lag *int64 `json:"lag,omitempty"`
	// LagOf says what Lag was measured against.
	LagOf string `json:"lag_of,omitempty"`
}

// Kinds of ChainIssue.
const (
	IssueGap      = "gap"       // positions no commit covers
	IssueOverlap  = "overlap"   // positions two commits cover
	IssueSeq      = "seq"       // a missing sequence number (a lost manifest)
	IssueBadRange = "bad range" // a commit whose end is before its start
)

// ChainIssue is one break in a source's chain of commits.
type ChainIssue struct {
	Source string `json:"source"`
	Kind   string `json:"kind"`
	// Seq is the commit at which the break shows; Prev the one before it
	// (0 if none).
	Seq  uint64 `json:"seq"`
	Prev uint64 `json:"prev,omitempty"`
	// From and To are the positions [From, To) concerned: missing for a
	// gap, covered twice for an overlap.
	From int64 `json:"from"`
	To   int64 `json:"to"`
}

func (i ChainIssue) String() string {
	switch i.Kind {
	case IssueGap:
		return fmt.Sprintf("%s: positions [%d, %d) are in no commit (between commits %d and %d)", i.Source, i.From, i.To, i.Prev, i.Seq)
	case IssueOverlap:
		return fmt.Sprintf("%s: positions [%d, %d) are in commits %d and %d", i.Source, i.From, i.To, i.Prev, i.Seq)
	case IssueSeq:
		missing := fmt.Sprintf("commits %d to %d are", i.Prev+1, i.Seq-1)
		if i.Seq-i.Prev == 2 {
			missing = fmt.Sprintf("commit %d is", i.Prev+1)
		}
		if i.Prev == 0 {
			return fmt.Sprintf("%s: %s missing (the first manifest is %d)", i.Source, missing, i.Seq)
		}
		return fmt.Sprintf("%s: %s missing (between manifests %d and %d)", i.Source, missing, i.Prev, i.Seq)
	default:
		return fmt.Sprintf("%s: commit %d ends at %d, before its start %d", i.Source, i.Seq, i.To, i.From)
	}
}

// CheckChains checks that every source's commits cover its positions
// without gap or overlap: numbered 1, 2, 3, … without a missing number,
// each starting where the one before ended. It returns the chains sorted
// by source, and the issues in the same order. The manifests may come in
// any order.
func CheckChains(ms []*lake.Manifest) ([]Chain, []ChainIssue) {
	bySource := map[string][]*lake.Manifest{}
	for _, m := range ms {
		bySource[m.Source] = append(bySource[m.Source], m)
	}
	sources := make([]string, 0, len(bySource))
	for s := range bySource {
		sources = append(sources, s)
	}
	slices.Sort(sources)
	chains := make([]Chain, 0, len(sources))
	var issues []ChainIssue
	for _, s := range sources {
		list := bySource[s]
		slices.SortFunc(list, func(a, b *lake.Manifest) int { return cmp.Compare(a.Seq, b.Seq) })
		c := Chain{Source: s, Commits: len(list), Start: list[0].Start}
		var prev *lake.Manifest
		for _, m := range list {
			if m.End < m.Start {
				issues = append(issues, ChainIssue{Source: s, Kind: IssueBadRange, Seq: m.Seq, From: m.Start, To: m.End})
			} else {
				c.Positions += m.End - m.Start
			}
			var prevSeq uint64
			if prev != nil {
				prevSeq = prev.Seq
			}
			if m.Seq != prevSeq+1 {
				issues = append(issues, ChainIssue{Source: s, Kind: IssueSeq, Seq: m.Seq, Prev: prevSeq})
			}
			if prev != nil {
				switch {
				case m.Start > prev.End:
					issues = append(issues, ChainIssue{Source: s, Kind: IssueGap, Seq: m.Seq, Prev: prev.Seq, From: prev.End, To: m.Start})
				case m.Start < prev.End:
					issues = append(issues, ChainIssue{Source: s, Kind: IssueOverlap, Seq: m.Seq, Prev: prev.Seq, From: m.Start, To: min(prev.End, m.End)})
				}
			}
			prev = m
		}
		c.LastSeq, c.End = prev.Seq, prev.End
		chains = append(chains, c)
	}
	return chains, issues
}
