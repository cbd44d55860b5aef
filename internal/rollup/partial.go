package rollup

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/axiomhq/hyperloglog"

	"github.com/dataco/clickstream/internal/results"
	"github.com/dataco/clickstream/internal/schema"
	"github.com/dataco/clickstream/internal/userset"
)

// A shard partial is what one key range of a roll-up leaves for the
// merge when the key ranges are computed apart (a cluster task each):
// its (url, country) and (url, all countries) rows, and per country its
// counters and the sorted distinct hashes of its users (or, beyond
// Config.ExactLimit, their sketch). MergePartials counts, across the
// partials, each country's union and everything's, exactly as Compute
// does across its shards (the same merge).
//
// With Config.KeepSets, a partial also carries the key range's (url,
// country) entries with their sets, as a set file (package userset) for
// the result's sets.
//
// Encoding: partialMagic, the header's length (uint64, little-endian),
// the header (JSON), then for each country of the header without a
// sketch, in order, its hashes (uint64s, little-endian, increasing), then
// the set file of SetFileBytes bytes, if any.
const partialMagic = "clickstream-rollup-partial/1\n"

// ErrPartial reports a shard partial that cannot be merged.
var ErrPartial = errors.New("rollup: bad shard partial")

// maxPartialHeader bounds a partial's header (its rows), 1 GiB.
const maxPartialHeader = 1 << 30

type partialHeader struct {
	Grain     string         `json:"grain"`
	From      time.Time      `json:"from"`
	To        time.Time      `json:"to"`
	Shard     int            `json:"shard"`
	Shards    int            `json:"shards"`
	Rows      []partialRow   `json:"rows"`
	Countries []partialUsers `json:"countries"`
	// What the shard read and found. Not its buffers' peak nor its
	// spills: which buffer spills first may differ from one run to the
	// next, and a partial's bytes must not (a task's attempts store the
	// same partial).
	Keys         int64          `json:"keys"`
	Largest      string         `json:"largest,omitempty"`
	LargestUsers int64          `json:"largest_users,omitempty"`
	Windows      int            `json:"windows"`
	HashesRead   int64          `json:"hashes_read"`
	SetBytes     int64          `json:"set_bytes"`
	Gaps         [][2]time.Time `json:"gaps,omitempty"`
	Inputs       []Input        `json:"inputs"`
	// The set file that ends the partial (KeepSets): its size, entries
	// and hashes.
	SetFileBytes  int64 `json:"set_file_bytes,omitempty"`
	SetFileKeys   int   `json:"set_file_keys,omitempty"`
	SetFileHashes int64 `json:"set_file_hashes,omitempty"`
}

// partialRow is a row of a shard: what row() is built from.
type partialRow struct {
	URL         string `json:"url"`
	Country     string `json:"country"`
	Clicks      int64  `json:"clicks"`
	TimeSpentMs int64  `json:"time_spent_ms"`
	Samples     int64  `json:"samples"`
	BotClicks   int64  `json:"bot_clicks"`
	Users       int64  `json:"users"`
	Approximate bool   `json:"approximate,omitempty"`
}

// partialUsers is a country of a shard: its counters, and its users'
// hashes (that many follow the header) or sketch.
type partialUsers struct {
	Country     string `json:"country"`
	Clicks      int64  `json:"clicks"`
	TimeSpentMs int64  `json:"time_spent_ms"`
	Samples     int64  `json:"samples"`
	BotClicks   int64  `json:"bot_clicks"`
	Hashes      int64  `json:"hashes"`
	Sketch      []byte `json:"sketch,omitempty"`
}

// ComputeShard computes key range shard of shards (by a hash of the URL,
// as Compute splits its work) of the roll-up of windows into the period
// [from, to) of grain, and writes it to w as a shard partial for
// MergePartials. cfg.MemoryBudget bounds this shard alone; cfg.Shards is
// ignored. With cfg.KeepSets the partial carries the key range's sets.
func ComputeShard(ctx context.Context, cfg Config, grain string, from, to time.Time, windows []Window, shard, shards int, w io.Writer) error {
	if shards < 1 || shard < 0 || shard >= shards {
		return fmt.Errorf("%w: key range %d of %d", ErrConfig, shard, shards)
	}
	files, st, err := open(ctx, cfg, grain, from, to, windows)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp(cfg.SpillDir, "rollup-")
	if err != nil {
		return fmt.Errorf("rollup: spill folder: %w", err)
	}
	defer os.RemoveAll(dir)
	sh, err := newShard(cfg, grain, from, to, shard, shards, cfg.MemoryBudget, dir)
	if err != nil {
		return err
	}
	o, err := sh.run(ctx, files)
	if err != nil {
		return err
	}
	defer func() {
		for _, u := range o.countries {
			u.release()
		}
	}()
	hd := partialHeader{Grain: grain, From: from.UTC(), To: to.UTC(), Shard: shard, Shards: shards,
		Keys: o.keys, Largest: o.largest, LargestUsers: o.largestUsers,
		Windows: st.Windows, HashesRead: st.HashesRead, SetBytes: st.SetBytes, Gaps: st.Gaps, Inputs: st.Inputs}
	for i, r := range o.rows {
		c := o.rowCounters[i]
		hd.Rows = append(hd.Rows, partialRow{URL: r.URL, Country: r.Country, Clicks: c.clicks,
			TimeSpentMs: c.ms, Samples: c.samples, BotClicks: c.bots, Users: r.UniqueUsers, Approximate: r.Approximate})
	}
	names := make([]string, 0, len(o.countries))
	for c := range o.countries {
		names = append(names, c)
	}
	slices.Sort(names)
	type hashes struct {
		src   source
		close func()
	}
	var hs []hashes
	defer func() {
		for _, h := range hs {
			h.close()
		}
	}()
	for _, c := range names {
		u, k := o.countries[c], o.countryCounters[c]
		pu := partialUsers{Country: c, Clicks: k.clicks, TimeSpentMs: k.ms, Samples: k.samples, BotClicks: k.bots}
		if u.sk != nil {
			if pu.Sketch, err = u.sk.MarshalBinary(); err != nil {
				return fmt.Errorf("rollup: encode sketch: %w", err)
			}
		} else {
			src, n, closer, err := u.single()
			if err != nil {
				return err
			}
			hs = append(hs, hashes{src, closer})
			pu.Hashes = n
		}
		hd.Countries = append(hd.Countries, pu)
	}
	var setFile []byte
	if o.enc != nil {
		setFile = o.enc.Bytes()
		hd.SetFileBytes, hd.SetFileKeys, hd.SetFileHashes = int64(len(setFile)), o.enc.Keys(), o.enc.Hashes()
	}
	head, err := json.Marshal(hd)
	if err != nil {
		return fmt.Errorf("rollup: encode partial: %w", err)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	var buf [8]byte
	bw.WriteString(partialMagic)
	binary.LittleEndian.PutUint64(buf[:], uint64(len(head)))
	bw.Write(buf[:])
	bw.Write(head)
	for i, h := range hs {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		for {
			x, ok, err := h.src.next()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			binary.LittleEndian.PutUint64(buf[:], x)
			if _, err := bw.Write(buf[:]); err != nil {
				return fmt.Errorf("rollup: write partial: %w", err)
			}
		}
	}
	bw.Write(setFile)
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("rollup: write partial: %w", err)
	}
	return nil
}

// MergePartials merges the shard partials of every key range of one
// roll-up (ComputeShard's, one per shard, in any order) into its rows,
// sorted by (URL, Country): the rows of Compute with as many shards, and
// the key ranges' set files, in key range order, if the partials carry
// them (ComputeShard with Config.KeepSets). Its Stats count the buffers
// and spills of the merge alone. It is a PartialMerger given each
// partial in turn.
func MergePartials(ctx context.Context, cfg Config, grain string, from, to time.Time, partials []io.Reader) ([]schema.Row, []results.SetFile, Stats, error) {
	m, err := NewPartialMerger(cfg, grain, from, to, len(partials))
	if err != nil {
		return nil, nil, Stats{}, err
	}
	defer m.Close()
	for _, r := range partials {
		if err := ctx.Err(); err != nil {
			return nil, nil, Stats{}, err
		}
		if err := m.Add(r); err != nil {
			return nil, nil, Stats{}, err
		}
	}
	return m.Finish(ctx)
}

// A PartialMerger merges the shard partials of one roll-up as they come,
// so that its caller need not hold them: Add copies each country's hashes
// of a partial to a run under Config.SpillDir and keeps its rows (and its
// set file), and Finish merges, holding at most Config.MemoryBudget bytes
// of hashes. Close removes the runs.
type PartialMerger struct {
	cfg      Config
	grain    string
	from, to time.Time
	dir      string
	outs     []*shardOut
	added    int
	first    int  // the key range of the first partial added
	keep     bool // whether the first partial carried a set file
	st       Stats
}

// NewPartialMerger returns a merger of the n shard partials of the
// roll-up of grain's period [from, to).
func NewPartialMerger(cfg Config, grain string, from, to time.Time, n int) (*PartialMerger, error) {
	if _, _, err := Period(grain, from); err != nil {
		return nil, err
	}
	if n <= 0 {
		return nil, fmt.Errorf("%w: no partials", ErrPartial)
	}
	dir, err := os.MkdirTemp(cfg.SpillDir, "rollup-merge-")
	if err != nil {
		return nil, fmt.Errorf("rollup: spill folder: %w", err)
	}
	return &PartialMerger{cfg: cfg, grain: grain, from: from, to: to, dir: dir, outs: make([]*shardOut, n)}, nil
}

// Add reads the next partial, of any key range not added yet.
func (m *PartialMerger) Add(r io.Reader) error {
	i := m.added
	if i == len(m.outs) {
		return fmt.Errorf("%w: more than %d partials", ErrPartial, len(m.outs))
	}
	o, hd, err := readPartial(r, filepathShard(m.dir, i), m.cfg.ExactLimit, m.grain, m.from, m.to)
	if err != nil {
		return fmt.Errorf("%w (partial %d)", err, i)
	}
	release := func() {
		for _, u := range o.countries {
			u.release()
		}
	}
	switch {
	case hd.Shards != len(m.outs):
		release()
		return fmt.Errorf("%w: partial %d is key range %d of %d, given %d partials", ErrPartial, i, hd.Shard, hd.Shards, len(m.outs))
	case m.outs[hd.Shard] != nil:
		release()
		return fmt.Errorf("%w: key range %d given twice", ErrPartial, hd.Shard)
	case i > 0 && !slices.EqualFunc(hd.Inputs, m.st.Inputs, equalInput):
		release()
		return fmt.Errorf("%w: key range %d read other windows than key range %d (a window was committed again meanwhile)", ErrPartial, hd.Shard, m.first)
	case i > 0 && m.keep != (o.setFile != nil):
		release()
		return fmt.Errorf("%w: key range %d and key range %d differ in keeping sets", ErrPartial, hd.Shard, m.first)
	}
	if i == 0 {
		m.first, m.keep = hd.Shard, o.setFile != nil
	}
	m.outs[hd.Shard] = o
	m.added++
	m.st.Windows, m.st.HashesRead, m.st.SetBytes, m.st.Gaps, m.st.Inputs = hd.Windows, hd.HashesRead, hd.SetBytes, hd.Gaps, hd.Inputs
	return nil
}

// Finish merges the partials added, one of every key range, into the
// roll-up's rows and set files (MergePartials).
func (m *PartialMerger) Finish(ctx context.Context) ([]schema.Row, []results.SetFile, Stats, error) {
	if m.added != len(m.outs) {
		return nil, nil, m.st, fmt.Errorf("%w: %d partials of %d", ErrPartial, m.added, len(m.outs))
	}
	st := m.st
	rows, sets, err := merge(ctx, m.cfg.ExactLimit, m.cfg.MemoryBudget, m.dir, m.grain, m.from, m.to, m.outs, &st)
	return rows, sets, st, err
}

// Close releases the partials' unions and removes their runs.
func (m *PartialMerger) Close() {
	for _, o := range m.outs {
		if o == nil {
			continue
		}
		for _, u := range o.countries {
			u.release()
		}
	}
	os.RemoveAll(m.dir)
}

func equalInput(a, b Input) bool {
	return a.URI == b.URI && a.Run == b.Run && a.Final == b.Final && a.EventsInWindow == b.EventsInWindow &&
		a.SessionTimeout == b.SessionTimeout && a.Lake == b.Lake &&
		(a.Watermark == nil) == (b.Watermark == nil) && (a.Watermark == nil || a.Watermark.Equal(*b.Watermark))
}

func filepathShard(dir string, i int) string {
	return filepath.Join(dir, fmt.Sprintf("partial-%06d", i))
}

// readPartial decodes a shard partial of the period [from, to) of grain
// into a shard's output, its countries' hashes in runs under dir.
func readPartial(r io.Reader, dir string, exactLimit int64, grain string, from, to time.Time) (*shardOut, partialHeader, error) {
	var hd partialHeader
	br := bufio.NewReaderSize(r, 64<<10)
	magic := make([]byte, len(partialMagic))
	if _, err := io.ReadFull(br, magic); err != nil || string(magic) != partialMagic {
		return nil, hd, fmt.Errorf("%w: not a roll-up shard partial", ErrPartial)
	}
	var buf [8]byte
	if _, err := io.ReadFull(br, buf[:]); err != nil {
		return nil, hd, fmt.Errorf("%w: header: %w", ErrPartial, err)
	}
	n := binary.LittleEndian.Uint64(buf[:])
	if n > maxPartialHeader {
		return nil, hd, fmt.Errorf("%w: header of %d bytes", ErrPartial, n)
	}
	// Read as it comes, not allocated from the length ahead.
	head, err := io.ReadAll(io.LimitReader(br, int64(n)))
	if err != nil {
		return nil, hd, fmt.Errorf("%w: header: %w", ErrPartial, err)
	}
	if uint64(len(head)) != n {
		return nil, hd, fmt.Errorf("%w: header of %d bytes, %d there", ErrPartial, n, len(head))
	}
	if err := json.Unmarshal(head, &hd); err != nil {
		return nil, hd, fmt.Errorf("%w: header: %w", ErrPartial, err)
	}
	switch {
	case hd.Grain != grain || !hd.From.Equal(from) || !hd.To.Equal(to):
		return nil, hd, fmt.Errorf("%w: partial of %s [%s, %s), want %s [%s, %s)", ErrPartial, hd.Grain, fmtT(hd.From), fmtT(hd.To), grain, fmtT(from), fmtT(to))
	case hd.Shards < 1 || hd.Shard < 0 || hd.Shard >= hd.Shards:
		return nil, hd, fmt.Errorf("%w: key range %d of %d", ErrPartial, hd.Shard, hd.Shards)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, hd, fmt.Errorf("rollup: spill folder: %w", err)
	}
	b := newBudget(0, dir)
	b.exactLimit = exactLimit
	o := &shardOut{countries: map[string]*union{}, countryCounters: map[string]counters{}, b: b,
		keys: hd.Keys, largest: hd.Largest, largestUsers: hd.LargestUsers}
	for _, r := range hd.Rows {
		c := counters{clicks: r.Clicks, ms: r.TimeSpentMs, samples: r.Samples, bots: r.BotClicks}
		o.rows = append(o.rows, row(from, to, grain, r.URL, r.Country, c, r.Users, r.Approximate))
	}
	for _, pu := range hd.Countries {
		if _, dup := o.countries[pu.Country]; dup {
			return nil, hd, fmt.Errorf("%w: country %q twice", ErrPartial, pu.Country)
		}
		o.countryCounters[pu.Country] = counters{clicks: pu.Clicks, ms: pu.TimeSpentMs, samples: pu.Samples, bots: pu.BotClicks}
		u := newUnion(b)
		o.countries[pu.Country] = u
		if pu.Sketch != nil {
			u.sk = new(hyperloglog.Sketch)
			if err := u.sk.UnmarshalBinary(pu.Sketch); err != nil {
				return nil, hd, fmt.Errorf("%w: sketch of %q: %w", ErrPartial, pu.Country, err)
			}
			continue
		}
		if pu.Hashes < 0 {
			return nil, hd, fmt.Errorf("%w: %d hashes", ErrPartial, pu.Hashes)
		}
		if pu.Hashes == 0 {
			continue
		}
		path, err := b.writeRun(&readSource{r: br, left: pu.Hashes})
		if err != nil {
			return nil, hd, fmt.Errorf("%w: hashes of %q: %w", ErrPartial, pu.Country, err)
		}
		u.runs = []string{path}
	}
	if hd.SetFileBytes != 0 {
		f, err := readSetFile(br, hd)
		if err != nil {
			return nil, hd, err
		}
		o.setFile = f
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return nil, hd, fmt.Errorf("%w: bytes after the last hash", ErrPartial)
	}
	// The copies above are not spills of the roll-up's unions.
	b.peak, b.spills, b.spilled = 0, 0, 0
	return o, hd, nil
}

// readSetFile reads and checks the set file that ends a partial: the
// entries and hashes its header says, each key in the partial's key
// range.
func readSetFile(r io.Reader, hd partialHeader) (*results.SetFile, error) {
	if hd.SetFileBytes < 0 || hd.SetFileKeys < 0 || hd.SetFileHashes < 0 {
		return nil, fmt.Errorf("%w: set file of %d bytes, %d keys, %d hashes", ErrPartial, hd.SetFileBytes, hd.SetFileKeys, hd.SetFileHashes)
	}
	// Read as it comes, not allocated from the length ahead.
	data, err := io.ReadAll(io.LimitReader(r, hd.SetFileBytes))
	if err != nil {
		return nil, fmt.Errorf("%w: set file: %w", ErrPartial, err)
	}
	if int64(len(data)) != hd.SetFileBytes {
		return nil, fmt.Errorf("%w: set file of %d bytes, %d there", ErrPartial, hd.SetFileBytes, len(data))
	}
	sr, err := userset.Open(data)
	if err != nil {
		return nil, fmt.Errorf("%w: set file: %w", ErrPartial, err)
	}
	var hashes int64
	for {
		rec, ok := sr.Next()
		if !ok {
			break
		}
		if shardOf(rec.URL, hd.Shards) != hd.Shard {
			return nil, fmt.Errorf("%w: set file of key range %d holds %q, of another", ErrPartial, hd.Shard, rec.URL)
		}
		hashes += int64(rec.Len())
	}
	if sr.Keys() != hd.SetFileKeys || hashes != hd.SetFileHashes {
		return nil, fmt.Errorf("%w: set file of %d keys and %d hashes, header says %d and %d", ErrPartial, sr.Keys(), hashes, hd.SetFileKeys, hd.SetFileHashes)
	}
	return &results.SetFile{Data: data, Keys: sr.Keys(), Hashes: hashes}, nil
}

// readSource reads left increasing hashes from r.
type readSource struct {
	r    io.Reader
	left int64
	last uint64
	seen bool
	buf  [8]byte
}

func (s *readSource) next() (uint64, bool, error) {
	if s.left == 0 {
		return 0, false, nil
	}
	if _, err := io.ReadFull(s.r, s.buf[:]); err != nil {
		return 0, false, fmt.Errorf("%w: %w", ErrPartial, err)
	}
	h := binary.LittleEndian.Uint64(s.buf[:])
	if s.seen && h <= s.last {
		return 0, false, fmt.Errorf("%w: hashes not increasing", ErrPartial)
	}
	s.left--
	s.last, s.seen = h, true
	return h, true, nil
}
