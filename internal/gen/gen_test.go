package gen

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"reflect"
	"regexp"
	"slices"
	"testing"
	"time"

	"github.com/dataco/clickstream/internal/event"
	"github.com/spf13/pflag"
)

// generate returns all messages of cfg.
func generate(t testing.TB, cfg Config) []Message {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var out []Message
	for {
		m, ok := g.Next()
		if !ok {
			return out
		}
		out = append(out, m)
	}
}

func testConfig(events int) Config {
	cfg := NewConfig()
	cfg.Events = events
	cfg.Users = 500
	cfg.URLs = 1000
	return cfg
}

func TestDeterministic(t *testing.T) {
	cfg := testConfig(20_000)
	cfg.InvalidRatio = 0.05
	a, b := generate(t, cfg), generate(t, cfg)
	if len(a) != cfg.Events || len(b) != cfg.Events {
		t.Fatalf("got %d and %d messages, want %d", len(a), len(b), cfg.Events)
	}
	for i := range a {
		if !bytes.Equal(a[i].Value, b[i].Value) || !bytes.Equal(a[i].Key, b[i].Key) || !a[i].SentAt.Equal(b[i].SentAt) {
			t.Fatalf("message %d differs between runs:\n%s\n%s", i, a[i].Value, b[i].Value)
		}
	}
	cfg.Seed++
	c := generate(t, cfg)
	same := 0
	for i := range a {
		if bytes.Equal(a[i].Value, c[i].Value) {
			same++
		}
	}
	if same > len(a)/100 {
		t.Errorf("another seed repeats %d of %d messages", same, len(a))
	}
}

// TestParseAgrees checks every message against the parser: valid ones parse
// to the intended event, invalid ones fail with the intended reason.
func TestParseAgrees(t *testing.T) {
	cfg := testConfig(60_000)
	cfg.InvalidRatio = 0.05
	p := event.Parser{MaxSize: cfg.MaxSize}
	reasons := map[event.Reason]int{}
	for i, m := range generate(t, cfg) {
		if bytes.IndexByte(m.Value, '\n') >= 0 {
			t.Fatalf("message %d contains a newline: %q", i, m.Value)
		}
		e, err := p.Parse(m.Value)
		if m.Valid {
			if err != nil {
				t.Fatalf("message %d meant valid is rejected: %v\n%s", i, err, m.Value)
			}
			if e != m.Event {
				t.Fatalf("message %d parses to %+v, want %+v\n%s", i, e, m.Event, m.Value)
			}
			if string(m.Key) != e.UserID {
				t.Fatalf("message %d key %q, user id %q", i, m.Key, e.UserID)
			}
			continue
		}
		if got := event.ReasonOf(err); got != m.Reason {
			t.Fatalf("message %d meant %q fails with %q (%v)\n%.300q", i, m.Reason, got, err, m.Value)
		}
		reasons[m.Reason]++
	}
	for _, r := range event.Reasons() {
		if reasons[r] == 0 {
			t.Errorf("no invalid message with reason %q (seen %v)", r, reasons)
		}
	}
}

func TestInvalidMixCoversReasons(t *testing.T) {
	for _, r := range event.Reasons() {
		if !slices.ContainsFunc(invalidMix, func(x struct {
			reason event.Reason
			weight int
		}) bool {
			return x.reason == r && x.weight > 0
		}) {
			t.Errorf("invalidMix lacks reason %q", r)
		}
	}
}

func TestInvalidRatio(t *testing.T) {
	for _, ratio := range []float64{0, 0.02, 0.2, 1} {
		t.Run("", func(t *testing.T) {
			cfg := testConfig(20_000)
			cfg.InvalidRatio = ratio
			invalid := 0
			for _, m := range generate(t, cfg) {
				if !m.Valid {
					invalid++
				}
			}
			got := float64(invalid) / float64(cfg.Events)
			if tol := 0.01 + ratio*0.1; got < ratio-tol || got > ratio+tol {
				t.Errorf("invalid share %.4f, want %.2f ± %.3f", got, ratio, tol)
			}
		})
	}
}

func TestZipfSkew(t *testing.T) {
	cfg := testConfig(50_000)
	counts := map[string]int{}
	for _, m := range generate(t, cfg) {
		if m.Valid {
			counts[m.Event.URL]++
		}
	}
	freq := make([]int, cfg.URLs)
	i := 0
	for _, n := range counts {
		freq[i] = n
		i++
	}
	slices.Sort(freq)
	slices.Reverse(freq)
	top, median := freq[0], freq[len(freq)/2]
	if top < 20*max(median, 1) {
		t.Errorf("top URL has %d clicks, median %d: want a Zipf skew", top, median)
	}
	t.Logf("top URL %d clicks, 10th %d, median %d", top, freq[9], median)
}

func TestSessions(t *testing.T) {
	cfg := testConfig(60_000)
	byUser := map[string][]int64{}
	for _, m := range generate(t, cfg) {
		if m.Valid {
			byUser[m.Event.UserID] = append(byUser[m.Event.UserID], m.Event.Timestamp)
		}
	}
	var short, long int
	for _, ts := range byUser {
		slices.Sort(ts) // late messages arrive out of order
		for i := 1; i < len(ts); i++ {
			if time.Duration(ts[i]-ts[i-1])*time.Millisecond < SessionTimeout {
				short++
			} else {
				long++
			}
		}
	}
	share := float64(short) / float64(short+long)
	t.Logf("%d users, %d gaps within sessions, %d between (%.1f%% within)", len(byUser), short, long, 100*share)
	if share < 0.7 || share > 0.97 || long == 0 {
		t.Errorf("%.1f%% of gaps within a session (%d between): want most but not all", 100*share, long)
	}
}

func TestEventTimeOrder(t *testing.T) {
	cfg := testConfig(50_000)
	cfg.LateRatio = 0.02
	msgs := generate(t, cfg)
	var maxSeen int64
	late := 0
	for i, m := range msgs {
		ts := m.SentAt.UnixMilli()
		if m.Valid {
			ts = m.Event.Timestamp
			if m.SentAt.UnixMilli() < ts {
				t.Fatalf("message %d sent at %v before its event time %d", i, m.SentAt, ts)
			}
			if lag := m.SentAt.UnixMilli() - ts; lag > cfg.MaxLateness.Milliseconds() {
				t.Fatalf("message %d is %d ms late, more than %v", i, lag, cfg.MaxLateness)
			}
		}
		if ts < maxSeen {
			late++
		}
		maxSeen = max(maxSeen, ts)
	}
	share := float64(late) / float64(len(msgs))
	if share < 0.01 || share > 0.03 {
		t.Errorf("%.3f of messages out of event-time order, want about %.2f", share, cfg.LateRatio)
	}
	if first := msgs[0].SentAt; first.Before(cfg.Start) || first.After(cfg.Start.Add(24*time.Hour)) {
		t.Errorf("first message at %v, start %v", first, cfg.Start)
	}
}

func TestVariety(t *testing.T) {
	cfg := testConfig(20_000)
	patterns := map[string]*regexp.Regexp{
		"integer user id":   regexp.MustCompile(`"user_id": ?[0-9]`),
		"string user id":    regexp.MustCompile(`"user_id": ?"`),
		"epoch ms":          regexp.MustCompile(`"timestamp": ?[0-9]{13}`),
		"UTC":               regexp.MustCompile(`"timestamp": ?"[^"]*\.[0-9]{3}Z"`),
		"offset +05:30":     regexp.MustCompile(`"timestamp": ?"[^"]*\+05:30"`),
		"offset -08:00":     regexp.MustCompile(`"timestamp": ?"[^"]*-08:00"`),
		"microseconds":      regexp.MustCompile(`"timestamp": ?"[^"]*\.[0-9]{6}\+00:00"`),
		"blank country":     regexp.MustCompile(`"country": ?"\s*"`),
		"padded country":    regexp.MustCompile(`"country": ?" [A-Z]{2} "`),
		"no country":        regexp.MustCompile(`^[^\n]*$`), // refined below
		"escaped slash":     regexp.MustCompile(`\\/`),
		"escaped ampersand": regexp.MustCompile(`\\u0026`),
		"extra fields":      regexp.MustCompile(`"session_id"`),
		"non-ASCII city":    regexp.MustCompile(`"city": ?"[^"]*[^\x00-\x7f]`),
	}
	seen := map[string]int{}
	for _, m := range generate(t, cfg) {
		for name, re := range patterns {
			if name == "no country" {
				if !bytes.Contains(m.Value, []byte(`"country"`)) {
					seen[name]++
				}
				continue
			}
			if re.Match(m.Value) {
				seen[name]++
			}
		}
	}
	for name := range patterns {
		if seen[name] == 0 {
			t.Errorf("no message shows %s", name)
		}
	}
	t.Logf("%v", seen)
}

func TestRealtime(t *testing.T) {
	clock := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC)
	cfg := testConfig(1000)
	cfg.Realtime = true
	cfg.Start = time.Time{} // unused in realtime mode
	cfg.Now = func() time.Time {
		clock = clock.Add(10 * time.Millisecond)
		return clock
	}
	msgs := generate(t, cfg)
	if len(msgs) != cfg.Events {
		t.Fatalf("%d messages, want %d", len(msgs), cfg.Events)
	}
	begin := time.Date(2027, 3, 1, 12, 0, 0, 0, time.UTC).UnixMilli()
	for i, m := range msgs {
		if m.Valid && (m.Event.Timestamp <= begin || m.Event.Timestamp > clock.UnixMilli()) {
			t.Fatalf("message %d at %d, want wall-clock time within (%d, %d]", i, m.Event.Timestamp, begin, clock.UnixMilli())
		}
	}
}

func TestUnlimited(t *testing.T) {
	cfg := testConfig(0)
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5000 {
		if _, ok := g.Next(); !ok {
			t.Fatalf("generator ended after %d messages with Events = 0", i)
		}
	}
}

func TestWriteNDJSON(t *testing.T) {
	cfg := testConfig(3000)
	cfg.InvalidRatio = 0.1
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := g.WriteNDJSON(context.Background(), &buf)
	if err != nil || n != cfg.Events {
		t.Fatalf("WriteNDJSON = %d, %v; want %d, nil", n, err, cfg.Events)
	}
	want := generate(t, cfg)
	sc := bufio.NewScanner(&buf)
	sc.Buffer(nil, 1<<20)
	i := 0
	for ; sc.Scan(); i++ {
		if !bytes.Equal(sc.Bytes(), want[i].Value) {
			t.Fatalf("line %d = %q, want %q", i, sc.Bytes(), want[i].Value)
		}
	}
	if i != cfg.Events {
		t.Errorf("%d lines, want %d", i, cfg.Events)
	}
}

func TestStreamPacedAndCancelled(t *testing.T) {
	cfg := testConfig(0)
	cfg.Rate = 2000
	g, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Paced: 400 messages at 2000/s take about 200 ms.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	count := 0
	begin := time.Now()
	_, err = g.Stream(ctx, func(Message) error {
		count++
		if count == 400 {
			cancel()
		}
		return nil
	})
	elapsed := time.Since(begin)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Stream after cancel = %v, want context.Canceled", err)
	}
	if elapsed < 150*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("400 messages at 2000/s took %v, want about 200ms", elapsed)
	}

	// A send error stops the stream and is returned.
	errSend := errors.New("broker down")
	n, err := g.Stream(context.Background(), func(Message) error { return errSend })
	if n != 0 || !errors.Is(err, errSend) {
		t.Errorf("Stream = %d, %v; want 0, %v", n, err, errSend)
	}
}

func TestPacer(t *testing.T) {
	tests := []struct {
		name     string
		rate     float64
		events   int
		min, max time.Duration
	}{
		{name: "unlimited", rate: 0, events: 100000, min: 0, max: 500 * time.Millisecond},
		{name: "1000 per second", rate: 1000, events: 201, min: 150 * time.Millisecond, max: time.Second},
		{name: "high rate", rate: 1e6, events: 200_000, min: 150 * time.Millisecond, max: 2 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPacer(tc.rate)
			begin := time.Now()
			for range tc.events {
				if err := p.Wait(context.Background()); err != nil {
					t.Fatal(err)
				}
			}
			if d := time.Since(begin); d < tc.min || d > tc.max {
				t.Errorf("%d events took %v, want within [%v, %v]", tc.events, d, tc.min, tc.max)
			}
		})
	}
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		p := NewPacer(1) // one event per second: the second Wait blocks
		p.Wait(ctx)
		begin := time.Now()
		if err := p.Wait(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Wait = %v, want DeadlineExceeded", err)
		}
		if d := time.Since(begin); d > 500*time.Millisecond {
			t.Errorf("Wait returned after %v, want at the deadline", d)
		}
	})
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		ok   bool
	}{
		{name: "defaults", edit: func(*Config) {}, ok: true},
		{name: "unlimited events", edit: func(c *Config) { c.Events = 0 }, ok: true},
		{name: "realtime without start", edit: func(c *Config) { c.Realtime, c.Start = true, time.Time{} }, ok: true},
		{name: "negative events", edit: func(c *Config) { c.Events = -1 }},
		{name: "no users", edit: func(c *Config) { c.Users = 0 }},
		{name: "no urls", edit: func(c *Config) { c.URLs = 0 }},
		{name: "invalid ratio above 1", edit: func(c *Config) { c.InvalidRatio = 1.5 }},
		{name: "negative late ratio", edit: func(c *Config) { c.LateRatio = -0.1 }},
		{name: "late without lateness", edit: func(c *Config) { c.MaxLateness = 0 }},
		{name: "zero start", edit: func(c *Config) { c.Start = time.Time{} }},
		{name: "negative rate", edit: func(c *Config) { c.Rate = -1 }},
		{name: "think time beyond session timeout", edit: func(c *Config) { c.MeanThink = time.Hour }},
		{name: "session clicks below 1", edit: func(c *Config) { c.MeanSessionClicks = 0.5 }},
		{name: "negative session gap", edit: func(c *Config) { c.MeanSessionGap = -time.Second }},
		{name: "zipf s of 1", edit: func(c *Config) { c.ZipfS = 1 }},
		{name: "negative max size", edit: func(c *Config) { c.MaxSize = -1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := NewConfig()
			tc.edit(&cfg)
			err := cfg.Validate()
			if tc.ok != (err == nil) {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("error %v does not wrap ErrInvalidConfig", err)
			}
			if _, nerr := New(cfg); (nerr == nil) != tc.ok {
				t.Errorf("New() = %v, want ok %v", nerr, tc.ok)
			}
		})
	}
}

func TestAddFlags(t *testing.T) {
	cfg := NewConfig()
	fs := pflag.NewFlagSet("gen", pflag.ContinueOnError)
	cfg.AddFlags(fs)
	err := fs.Parse([]string{"--seed", "9", "--events", "10", "--start", "2025-06-01T10:00:00+02:00", "--rate", "50", "--realtime", "--think-time", "1m", "--invalid-ratio", "0.3"})
	if err != nil {
		t.Fatal(err)
	}
	want := NewConfig()
	want.Seed, want.Events, want.Rate, want.Realtime, want.MeanThink, want.InvalidRatio = 9, 10, 50, true, time.Minute, 0.3
	want.Start = time.Date(2025, 6, 1, 8, 0, 0, 0, time.UTC)
	if !cfg.Start.Equal(want.Start) {
		t.Errorf("Start = %v, want %v", cfg.Start, want.Start)
	}
	cfg.Start = want.Start
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("config = %+v\nwant %+v", cfg, want)
	}
}

func BenchmarkGenerate(b *testing.B) {
	cfg := NewConfig()
	cfg.Events = 0
	g, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	size := 0
	for b.Loop() {
		m, _ := g.Next()
		size += len(m.Value)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(size)/float64(b.N), "bytes/event")
}

// BenchmarkParseGenerated measures event.Parse over realistic traffic,
// invalid messages included.
func BenchmarkParseGenerated(b *testing.B) {
	cfg := NewConfig()
	cfg.Events = 100_000
	msgs := generate(b, cfg)
	size := 0
	for _, m := range msgs {
		size += len(m.Value)
	}
	b.SetBytes(int64(size / len(msgs)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		event.Parse(msgs[i%len(msgs)].Value)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
