package aggregate

import (
	"testing"
)

// TestUserSetsOfPartials: a merged partial's sets become the committed
// entries, in key order; partials that did not carry sets give none
// rather than empty sets.
func TestUserSetsOfPartials(t *testing.T) {
	p := NewPartial()
	p.Rows[Key{URL: "/b", Country: "DE"}] = &Row{Clicks: 3, Users: 2, UserHashes: []uint64{1, 9}, TimeSpentMs: 40, Samples: 1, BotClicks: 6}
	p.Rows[Key{URL: "/a", Country: "US"}] = &Row{Clicks: 1, Users: 1, UserHashes: []uint64{5}}
	es := p.UserSetEntries()
	if len(es) != 2 || es[0].URL != "/a" || es[1].Users != 2 || es[1].TimeSpentMs != 40 || len(es[1].Hashes) != 2 || es[1].BotClicks != 6 {
		t.Fatalf("entries %+v", es)
	}
	p.Rows[Key{URL: "/c", Country: "FR"}] = &Row{Clicks: 4, Users: 3} // no set
	if es := p.UserSetEntries(); es != nil {
		t.Fatalf("partials without sets gave entries %+v", es)
	}
}
