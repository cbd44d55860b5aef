package icetable_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/dataco/clickstream/internal/icetable"
)

// BenchmarkPublish compares the two ways lake commits of several sources
// (Kafka partitions) can reach the table, per lake commit:
//
//   - direct: every source publishes right after its own lake commit, so
//     the sources' table commits race and the losers redo theirs;
//   - coalesced: the sources notify one Publisher, which adds whatever is
//     pending in one table commit (what ingest does).
//
// It reports lake commits per second and table commits per lake commit.
func BenchmarkPublish(b *testing.B) {
	for _, sources := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("direct/sources=%d", sources), func(b *testing.B) { benchPublish(b, sources, false) })
		b.Run(fmt.Sprintf("coalesced/sources=%d", sources), func(b *testing.B) { benchPublish(b, sources, true) })
	}
}

func benchPublish(b *testing.B, sources int, coalesced bool) {
	ctx := context.Background()
	l := newTestLake(b)
	perSource := max(1, b.N/sources)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		commits int
		retries int
		errs    []error
	)
	count := func(p icetable.Published, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
		if p.Manifests > 0 {
			commits++ // one table commit per publishOnce with files; close enough for ≤ MaxManifestsPerCommit
		}
		retries += p.Retries
	}
	var pub *icetable.Publisher
	if coalesced {
		pub = icetable.StartPublisher(l.cat, l.store, icetable.PublisherOptions{Published: count})
	}
	b.ResetTimer()
	for s := range sources {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(s), 1))
			for seq := 1; seq <= perSource; seq++ {
				l.commit(b, fmt.Sprintf("topic-%d", s), uint64(seq), 8, rng)
				if coalesced {
					pub.Notify()
					continue
				}
				count(icetable.Publish(ctx, l.cat, l.store))
			}
		})
	}
	wg.Wait()
	if coalesced {
		if err := pub.Close(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if len(errs) > 0 {
		b.Fatal(errs[0])
	}
	total := perSource * sources
	b.ReportMetric(float64(total)/b.Elapsed().Seconds(), "lake-commits/s")
	b.ReportMetric(float64(commits)/float64(total), "table-commits/lake-commit")
	b.ReportMetric(float64(retries)/float64(total), "retries/lake-commit")
	b.ReportMetric(0, "ns/op")
}
