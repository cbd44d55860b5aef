package gen

import (
	"bytes"
	"crypto/sha256"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

// TestGolden pins the stream of one seed across versions, as TestDeterministic
// does across runs: the first messages verbatim, then a digest of all of them
// (key, send time, intended rejection, value). Late and invalid messages are
// in the mix, so that the order in which users and late messages come off
// their heaps is pinned too. A deliberate change of the traffic rewrites the
// file with -update.
func TestGolden(t *testing.T) {
	const verbatim = 100
	cfg := testConfig(20_000)
	cfg.InvalidRatio = 0.05
	cfg.LateRatio = 0.05
	var buf bytes.Buffer
	h := sha256.New()
	for i, m := range generate(t, cfg) {
		reason := string(m.Reason)
		if m.Valid {
			reason = "valid"
		}
		line := fmt.Appendf(nil, "%q %d %s %q\n", m.Key, m.SentAt.UnixMilli(), reason, m.Value)
		h.Write(line)
		if i < verbatim {
			buf.Write(line)
		}
	}
	fmt.Fprintf(&buf, "sha256 of all %d messages: %x\n", cfg.Events, h.Sum(nil))

	path := filepath.Join("testdata", "stream.golden")
	if *update {
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Fatalf("stream differs from %s (run with -update if intended):\n got:\n%s\nwant:\n%s", path, buf.Bytes(), want)
	}
}
