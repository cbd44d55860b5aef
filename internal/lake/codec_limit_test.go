package lake

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"

	"github.com/dataco/clickstream/internal/event"
)

// TestDecompressionBounded: a gzipped NDJSON file decompresses up to the
// limit and no further, whatever its compressed size.
func TestDecompressionBounded(t *testing.T) {
	var evs []event.Event
	for i := range 100 {
		evs = append(evs, event.Event{UserID: "u", URL: "/p", Country: "FR", Timestamp: int64(i) * 1000})
	}
	data, err := EncodeNDJSONGzip(evs)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	var plain bytes.Buffer
	if _, err := plain.ReadFrom(zr); err != nil {
		t.Fatal(err)
	}
	size := int64(plain.Len())
	if got, err := decodeNDJSONGzip(data, size); err != nil || len(got) != len(evs) {
		t.Fatalf("at the limit: %d events, %v", len(got), err)
	}
	if _, err := decodeNDJSONGzip(data, size-1); !errors.Is(err, errDecompressedTooLarge) {
		t.Fatalf("one byte over the limit: %v", err)
	}

	// A bomb: 64 MiB of blank lines in ~64 KiB.
	var bomb bytes.Buffer
	zw := gzip.NewWriter(&bomb)
	if _, err := zw.Write([]byte(strings.Repeat("\n", 64<<20))); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	if _, err := decodeNDJSONGzip(bomb.Bytes(), 1<<20); !errors.Is(err, errDecompressedTooLarge) || !strings.Contains(err.Error(), "decompresses to more than") {
		t.Fatalf("a %d-byte bomb under a 1 MiB limit: %v", bomb.Len(), err)
	}
}
