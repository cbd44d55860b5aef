package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/dataco/clickstream/internal/aggregate"
	"github.com/dataco/clickstream/internal/lake"
)

// runFloor is clickstream's floor: what a job's tasks do before they
// aggregate. It plans the window's files from the events table as the
// coordinator does, then, GOMAXPROCS buckets at a time, reads each bucket's
// files from the store and decodes them with the worker's column reader
// (aggregate.ColumnReader: the four columns, page by page, held as
// records) — and stops there: no grouping by user, no time spent, no
// merge. It prints {"events": N} (the planned files' events).
func runFloor(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	lakeURI := fs.String("lake", "", "the lake (file://)")
	var from, to time.Time
	fs.TextVar(&from, "from", time.Time{}, "window start, RFC 3339")
	fs.TextVar(&to, "to", time.Time{}, "window end, RFC 3339")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files, err := planFiles(ctx, *lakeURI, from, to)
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	store, err := lake.Open(ctx, *lakeURI, lake.S3Options{})
	if err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	w := aggregate.Window{From: from, To: to}
	if err := w.Validate(); err != nil {
		return fmt.Errorf("floor: %w", err)
	}
	buckets := make(chan []lake.DataFile)
	errs := make(chan error, runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for fs := range buckets {
				r := aggregate.NewColumnReader(w, 0)
				for _, f := range fs {
					data, err := store.GetSized(ctx, f.Key, f.Bytes)
					if err == nil {
						err = r.AddFile(bytes.NewReader(data), int64(len(data)))
					}
					if err != nil {
						errs <- fmt.Errorf("floor: %s: %w", f.Key, err)
						return
					}
				}
				runtime.KeepAlive(r)
			}
		}()
	}
	var events int64
	for _, fs := range files {
		for _, f := range fs {
			events += f.Events
		}
		select {
		case buckets <- fs:
		case err := <-errs:
			close(buckets)
			wg.Wait()
			return err
		}
	}
	close(buckets)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]int64{"events": events})
}
