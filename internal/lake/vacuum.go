package lake

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DefaultVacuumMinAge is how old an unreferenced file must be before Vacuum
// deletes it, unless told otherwise.
const DefaultVacuumMinAge = 24 * time.Hour

// VacuumReport says what a vacuum found and did.
type VacuumReport struct {
	Referenced int          // data and dead-letter files some manifest names
	Orphans    []ObjectInfo // files no manifest names, older than the minimum age
	Young      int          // files no manifest names, too recent to judge
	Deleted    int          // orphans deleted (0 in a dry run)
	Bytes      int64        // size of the orphans
}

// Vacuum deletes the data and dead-letter files that no manifest names and
// that are older than minAge: what crashed, fenced or timed-out commits left
// behind. Readers never see such files, so deleting them frees storage and
// changes nothing else. With dryRun it only reports them.
//
// A file a commit is still writing is not named by a manifest yet: minAge
// must exceed the longest commit attempt (ingest's --commit-timeout) plus
// any clock skew between this host and the store. Ages are measured from
// before the manifests are read, so a file counts as an orphan only if its
// commit, had there been one, would have finished before that moment.
func Vacuum(ctx context.Context, s Store, minAge time.Duration, dryRun bool) (VacuumReport, error) {
	if minAge <= 0 {
		return VacuumReport{}, fmt.Errorf("lake: vacuum: minimum age %v must be positive", minAge)
	}
	cutoff := time.Now().Add(-minAge)
	sn, err := ReadSnapshot(ctx, s)
	if err != nil {
		return VacuumReport{}, fmt.Errorf("lake: vacuum: %w", err)
	}
	named := make(map[string]bool)
	for _, m := range sn.Manifests {
		for _, f := range m.Files {
			named[f.Key] = true
		}
		if m.Rejected != "" {
			named[m.Rejected] = true
		}
	}
	var rep VacuumReport
	for _, prefix := range []string{EventsPrefix, RejectedPrefix} {
		objs, err := s.List(ctx, prefix)
		if err != nil {
			return rep, fmt.Errorf("lake: vacuum: list %s: %w", prefix, err)
		}
		for _, o := range objs {
			if prefix == EventsPrefix && !strings.HasPrefix(o.Key, EventsPrefix+"hour=") {
				continue // not a data file: the Iceberg table's metadata/, which the table keeps
			}
			switch {
			case named[o.Key]:
				rep.Referenced++
			case !o.ModTime.Before(cutoff):
				rep.Young++
			default:
				rep.Orphans = append(rep.Orphans, o)
				rep.Bytes += o.Size
			}
		}
	}
	if dryRun {
		return rep, nil
	}
	var errs []error
	for _, o := range rep.Orphans {
		if err := s.Delete(ctx, o.Key); err != nil {
			errs = append(errs, fmt.Errorf("lake: vacuum: delete %s: %w", o.Key, err))
			continue
		}
		rep.Deleted++
	}
	return rep, errors.Join(errs...)
}
