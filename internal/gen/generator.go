package gen

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/dataco/clickstream/internal/event"
	"github.com/dataco/clickstream/internal/jsonstr"
)

// Message is one generated Kafka record.
type Message struct {
	// Key is the Kafka key: the user id, or nil when the message carries
	// no usable one (missing_user_id, bad_user_id).
	Key []byte
	// Value is the raw message value. It never contains a newline byte,
	// so messages can be written one per line.
	Value []byte
	// SentAt is when the message was produced: its event time, later for a
	// late message. Use it as the Kafka record timestamp.
	SentAt time.Time
	// Valid tells whether the generator meant Value to satisfy the event
	// contract. If so, event.Parse(Value) returns Event; if not, it fails
	// with Reason.
	Valid  bool
	Event  event.Event
	Reason event.Reason
	// Bot tells that a bot user sent the message (Config.BotShare), with
	// a bot's user agent: the truth that ingest's is_bot should match.
	// Event.IsBot stays false: Parse does not classify.
	Bot bool
}

// Generator produces a reproducible stream of click messages from simulated
// users. It is not safe for concurrent use.
type Generator struct {
	cfg     Config
	rng     *rand.Rand
	zipf    *rand.Zipf
	urls    []string
	users   []user
	byTime  minHeap[slot]    // users by time of their next click
	late    minHeap[pending] // late messages by release time
	lateSeq uint64
	made    int // clicks generated so far
	zones   map[int]*time.Location
	invalid weighted // over invalidMix
	now     func() time.Time
	buf     []byte // arena for the member values of the message being built
	fs      []kv   // members of the message being built
	truth   Truth
}

// Truth counts what the generator has returned so far: the truth that
// tests and operators compare ingest's and the aggregation's counts with.
type Truth struct {
	Messages int64
	Valid    int64 // messages meant to pass the event contract
	Bots     int64 // of Valid, those of bot users (Message.Bot)
}

// Truth returns the counts of the messages returned so far.
func (g *Generator) Truth() Truth { return g.truth }

// user is one simulated visitor; its client fixes how its messages look.
type user struct {
	id       string
	numeric  bool // id is an integer
	country  int  // index into countries
	city     city
	ua       string // user agent
	bot      bool   // a crawler or script (Config.BotShare)
	client   client
	left     int    // clicks left in the current session after the next one
	session  uint64 // current session number, for session_id extras
	sessSalt uint32
}

// tsForm is how a client writes timestamps.
type tsForm uint8

const (
	tsZulu   tsForm = iota // RFC 3339, UTC, milliseconds, Z
	tsOffset               // RFC 3339, local offset, milliseconds
	tsMicros               // RFC 3339, microseconds, +00:00 (Python isoformat)
	tsMillis               // JSON integer of epoch milliseconds
)

// client is the software sending a user's events: message shape varies by
// producer, as in real traffic.
type client struct {
	ts          tsForm
	intID       bool // sends a numeric id as a JSON number
	app         bool // native app: different field order, extra fields
	spaced      bool // ", " and ": " separators (Python json.dumps)
	escapeHTML  bool // & < > as \u0026... (Go encoding/json)
	escapeSlash bool // / as \/ (PHP json_encode)
}

// New returns a generator for cfg.
func New(cfg Config) (*Generator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxSize == 0 {
		cfg.MaxSize = event.MaxSize
	}
	g := &Generator{
		cfg:     cfg,
		rng:     rand.New(rand.NewPCG(uint64(cfg.Seed), 0x636c69636b73)),
		zones:   map[int]*time.Location{},
		invalid: newWeighted(len(invalidMix), func(i int) int { return invalidMix[i].weight }),
		late:    newMinHeap(0, pending.before),
		now:     cfg.Now,
	}
	if g.now == nil {
		g.now = time.Now
	}
	g.urls = makeURLs(g.rng, cfg.URLs)
	g.zipf = rand.NewZipf(g.rng, cfg.ZipfS, 1, uint64(cfg.URLs-1))

	byCountry := newWeighted(len(countries), func(i int) int { return countries[i].weight })
	byAgent := newWeighted(len(agents), func(i int) int { return agents[i].weight })
	byBotAgent := newWeighted(len(botAgents), func(i int) int { return botAgents[i].weight })
	seen := make(map[string]bool, cfg.Users)
	g.users = make([]user, cfg.Users)
	g.byTime = newMinHeap(cfg.Users, slot.before)
	start := cfg.Start.UnixMilli()
	if cfg.Realtime {
		start = g.now().UnixMilli()
	}
	for i := range g.users {
		u := &g.users[i]
		u.numeric = g.rng.IntN(10) < 4
		for u.id == "" || seen[u.id] {
			if u.numeric {
				u.id = strconv.Itoa(100000 + g.rng.IntN(900_000_000))
			} else {
				u.id = fmt.Sprintf("u_%012x", g.rng.Uint64()>>16)
			}
		}
		seen[u.id] = true
		u.country = byCountry.pick(g.rng)
		cs := countries[u.country].cities
		u.city = cs[g.rng.IntN(len(cs))]
		if _, ok := g.zones[u.city.offset]; !ok {
			g.zones[u.city.offset] = time.FixedZone("", u.city.offset*60)
		}
		a := agents[byAgent.pick(g.rng)]
		if cfg.BotShare > 0 && g.rng.Float64() < cfg.BotShare {
			a = botAgents[byBotAgent.pick(g.rng)]
			u.bot = true
		}
		u.ua = a.ua
		u.client = g.newClient(a.app, u.numeric)
		u.sessSalt = g.rng.Uint32()
		g.byTime.push(slot{at: g.nextSession(u, start, true), user: int32(i)})
	}
	return g, nil
}

func (g *Generator) newClient(app, numeric bool) client {
	c := client{app: app}
	if app {
		c.ts = tsMillis
		if g.rng.IntN(10) == 0 {
			c.ts = tsZulu
		}
		c.intID = numeric
		return c
	}
	switch k := g.rng.IntN(20); {
	case k < 15:
		c.ts = tsZulu
	case k < 18:
		c.ts = tsOffset
	default:
		c.ts = tsMicros
		c.spaced = true
	}
	c.intID = numeric && g.rng.IntN(2) == 0
	c.escapeHTML = g.rng.IntN(5) == 0
	c.escapeSlash = !c.escapeHTML && g.rng.IntN(10) == 0
	return c
}

// nextSession schedules the first click of u's next session after from: at
// least SessionTimeout later (unless initial), the idle time exponential
// and night hours thinned out. It draws the session's length too.
func (g *Generator) nextSession(u *user, from int64, initial bool) int64 {
	t := from
	if !initial {
		t += SessionTimeout.Milliseconds() + 1
	}
	meanGap := float64(g.cfg.MeanSessionGap.Milliseconds())
	for range 8 {
		t += int64(g.rng.ExpFloat64() * meanGap)
		localHour := ((t+int64(u.city.offset)*60_000)/3_600_000%24 + 24) % 24
		if u.bot || g.rng.Float64() < hourWeight[localHour] {
			break // bots crawl at any hour
		}
	}
	// Geometric number of clicks, mean MeanSessionClicks.
	u.left = 0
	clicks := g.cfg.MeanSessionClicks
	if u.bot {
		clicks = botMeanSessionClicks
	}
	if p := 1 / clicks; p < 1 {
		u.left = int(math.Log(1-g.rng.Float64()) / math.Log(1-p))
	}
	u.session++
	return t
}

// thinkTime draws the time to the next click of u within a session.
func (g *Generator) thinkTime(u *user) int64 {
	mean := g.cfg.MeanThink
	if u.bot {
		mean = min(mean, botMeanThink)
	}
	d := int64(g.rng.ExpFloat64() * float64(mean.Milliseconds()))
	return min(max(d, 500), SessionTimeout.Milliseconds()-1000)
}

// Next returns the next message, or false once cfg.Events messages have been
// returned. Messages come in event-time order, except late ones.
func (g *Generator) Next() (Message, bool) {
	m, ok := g.next()
	if ok {
		g.truth.Messages++
		if m.Valid {
			g.truth.Valid++
			if m.Bot {
				g.truth.Bots++
			}
		}
	}
	return m, ok
}

func (g *Generator) next() (Message, bool) {
	for {
		if g.cfg.Events > 0 && g.made >= g.cfg.Events {
			if g.late.len() == 0 {
				return Message{}, false
			}
			return g.popLate(), true
		}
		now := g.byTime.peek().at
		if g.cfg.Realtime {
			now = g.now().UnixMilli()
		}
		if g.late.len() > 0 && g.late.peek().release <= now {
			return g.popLate(), true
		}
		m := g.click()
		if g.cfg.LateRatio > 0 && g.rng.Float64() < g.cfg.LateRatio {
			meanMs := float64(g.cfg.MaxLateness.Milliseconds()) / 4
			delay := min(1+int64(g.rng.ExpFloat64()*meanMs), g.cfg.MaxLateness.Milliseconds())
			g.lateSeq++
			g.late.push(pending{release: m.SentAt.UnixMilli() + delay, seq: g.lateSeq, msg: m})
			continue
		}
		return m, true
	}
}

func (g *Generator) popLate() Message {
	p := g.late.pop()
	p.msg.SentAt = time.UnixMilli(p.release).UTC()
	if g.cfg.Realtime {
		p.msg.SentAt = g.now().UTC()
	}
	return p.msg
}

// click advances the simulation by one click and renders its message.
func (g *Generator) click() Message {
	s := g.byTime.pop()
	u := &g.users[s.user]
	at := s.at
	if u.left > 0 {
		u.left--
		g.byTime.push(slot{at: s.at + g.thinkTime(u), user: s.user})
	} else {
		g.byTime.push(slot{at: g.nextSession(u, s.at, false), user: s.user})
	}
	g.made++

	ts := at
	if g.cfg.Realtime {
		ts = g.now().UnixMilli()
	}
	url := g.urls[g.zipf.Uint64()]
	if g.cfg.InvalidRatio > 0 && g.rng.Float64() < g.cfg.InvalidRatio {
		m := g.invalidMessage(u, ts, url)
		m.Bot = u.bot
		return m
	}
	fs, e := g.fields(u, ts, url)
	return Message{
		Key:    []byte(u.id),
		Value:  writeObject(make([]byte, 0, objectSize(fs, u.client.spaced)), fs, u.client.spaced),
		SentAt: time.UnixMilli(ts).UTC(),
		Valid:  true,
		Event:  e,
		Bot:    u.bot,
	}
}

// kv is one member of a message object: a key and its raw JSON value.
type kv struct {
	k string
	v []byte
}

// fields renders a valid message of u as object members, in its client's
// style, and returns the event it stands for. The members are valid until
// the next call.
func (g *Generator) fields(u *user, ts int64, url string) ([]kv, event.Event) {
	c := u.client
	e := event.Event{
		UserID:    u.id,
		Timestamp: ts,
		URL:       url,
		Country:   countries[u.country].code,
		City:      u.city.name,
		UserAgent: u.ua,
	}
	g.buf = g.buf[:0]
	fs := g.fs[:0]
	defer func() { g.fs = fs[:0] }()

	var id []byte
	if c.intID {
		id = g.raw(u.id)
	} else {
		id = g.str(c, u.id)
	}
	fs = append(fs, kv{"user_id", id}, kv{"timestamp", g.timestamp(c, u, ts)}, kv{"url", g.str(c, url)})

	// Optional fields, with the noise real producers add.
	switch k := g.rng.IntN(100); {
	case k < 2: // missing
		e.Country = event.UnknownCountry
	case k < 3:
		e.Country = event.UnknownCountry
		fs = append(fs, kv{"country", jsonNull})
	case k < 4:
		e.Country = event.UnknownCountry
		fs = append(fs, kv{"country", g.str(c, []string{"", " ", "\t"}[g.rng.IntN(3)])})
	case k < 5:
		fs = append(fs, kv{"country", g.str(c, " "+e.Country+" ")})
	default:
		fs = append(fs, kv{"country", g.str(c, e.Country)})
	}
	switch k := g.rng.IntN(100); {
	case k < 3:
		e.City = ""
	case k < 4:
		e.City = ""
		fs = append(fs, kv{"city", jsonNull})
	default:
		fs = append(fs, kv{"city", g.str(c, e.City)})
	}
	if g.rng.IntN(200) == 0 && !u.bot { // a bot always names itself
		e.UserAgent = ""
	} else {
		fs = append(fs, kv{"user_agent", g.str(c, e.UserAgent)})
	}

	// Fields outside the contract.
	if c.app {
		fs = append(fs,
			kv{"session_id", g.sessionID(u)},
			kv{"app_version", appVersion},
			kv{"screen", screen})
		// Apps put the timestamp first.
		fs[0], fs[1] = fs[1], fs[0]
	}
	if g.rng.IntN(4) == 0 {
		fs = append(fs, kv{"referrer", g.str(c, []string{"https://www.google.com/", "https://www.bing.com/", "", "https://t.co/x1Yz"}[g.rng.IntN(4)])})
	}
	if g.rng.IntN(10) == 0 {
		fs = append(fs, kv{"consent", jsonTrue}, kv{"ab", abTests})
	}
	return fs, e
}

// Constant member values.
var (
	appVersion = []byte(`"7.4.2"`)
	screen     = []byte(`{"w":390,"h":844,"dpr":3}`)
	jsonTrue   = []byte("true")
	jsonNull   = []byte("null")
	abTests    = []byte(`["checkout-v2",7,null,0.25]`)
)

// raw appends raw JSON to the arena and returns it.
func (g *Generator) raw(s string) []byte {
	start := len(g.buf)
	g.buf = append(g.buf, s...)
	return g.buf[start:len(g.buf):len(g.buf)]
}

// sessionID renders the id of u's current session.
func (g *Generator) sessionID(u *user) []byte {
	start := len(g.buf)
	g.buf = append(g.buf, `"s-`...)
	g.buf = strconv.AppendUint(g.buf, uint64(u.sessSalt), 16)
	g.buf = append(g.buf, '-')
	g.buf = strconv.AppendUint(g.buf, u.session, 10)
	g.buf = append(g.buf, '"')
	return g.buf[start:len(g.buf):len(g.buf)]
}

// str renders s as a JSON string in the client's escaping style.
func (g *Generator) str(c client, s string) []byte {
	start := len(g.buf)
	if !c.escapeHTML && !c.escapeSlash {
		g.buf = jsonstr.Append(g.buf, s)
		return g.buf[start:len(g.buf):len(g.buf)]
	}
	// Escape sequences never contain '/', '&', '<' or '>', so a byte-wise
	// rewrite of the encoded string is safe.
	for _, ch := range jsonstr.Append(nil, s) {
		switch {
		case c.escapeSlash && ch == '/':
			g.buf = append(g.buf, '\\', '/')
		case c.escapeHTML && ch == '&':
			g.buf = append(g.buf, `\u0026`...)
		case c.escapeHTML && ch == '<':
			g.buf = append(g.buf, `\u003c`...)
		case c.escapeHTML && ch == '>':
			g.buf = append(g.buf, `\u003e`...)
		default:
			g.buf = append(g.buf, ch)
		}
	}
	return g.buf[start:len(g.buf):len(g.buf)]
}

// timestamp renders ts in the client's format.
func (g *Generator) timestamp(c client, u *user, ts int64) []byte {
	start := len(g.buf)
	t := time.UnixMilli(ts).UTC()
	switch c.ts {
	case tsOffset:
		g.buf = t.In(g.zones[u.city.offset]).AppendFormat(append(g.buf, '"'), "2006-01-02T15:04:05.000-07:00")
		g.buf = append(g.buf, '"')
	case tsMicros:
		g.buf = t.AppendFormat(append(g.buf, '"'), "2006-01-02T15:04:05.000000-07:00")
		g.buf = append(g.buf, '"')
	case tsMillis:
		g.buf = strconv.AppendInt(g.buf, ts, 10)
	default:
		g.buf = t.AppendFormat(append(g.buf, '"'), event.TimestampLayout)
		g.buf = append(g.buf, '"')
	}
	return g.buf[start:len(g.buf):len(g.buf)]
}

// objectSize is the length of the JSON object of fs.
func objectSize(fs []kv, spaced bool) int {
	n := 2
	for _, f := range fs {
		n += len(f.k) + len(f.v) + 4
		if spaced {
			n += 2
		}
	}
	return n
}

// writeObject appends the JSON object of fs to dst.
func writeObject(dst []byte, fs []kv, spaced bool) []byte {
	dst = append(dst, '{')
	for i, f := range fs {
		if i > 0 {
			dst = append(dst, ',')
			if spaced {
				dst = append(dst, ' ')
			}
		}
		dst = append(dst, '"')
		dst = append(dst, f.k...)
		dst = append(dst, '"', ':')
		if spaced {
			dst = append(dst, ' ')
		}
		dst = append(dst, f.v...)
	}
	return append(dst, '}')
}

// Stream calls send with each message, paced at cfg.Rate, until the
// generator is exhausted, ctx is done or send fails. It returns the number
// of messages sent.
func (g *Generator) Stream(ctx context.Context, send func(Message) error) (int, error) {
	pacer := NewPacer(g.cfg.Rate)
	n := 0
	for {
		if err := pacer.Wait(ctx); err != nil {
			return n, err
		}
		m, ok := g.Next()
		if !ok {
			return n, nil
		}
		if err := send(m); err != nil {
			return n, err
		}
		n++
	}
}

// WriteNDJSON writes message values to w, one per line, as Stream does.
// When paced, output is flushed at least every 100 ms.
func (g *Generator) WriteNDJSON(ctx context.Context, w io.Writer) (int, error) {
	bw := bufio.NewWriterSize(w, 256<<10)
	var lastFlush time.Time
	n, err := g.Stream(ctx, func(m Message) error {
		bw.Write(m.Value)
		if err := bw.WriteByte('\n'); err != nil {
			return fmt.Errorf("gen: write: %w", err)
		}
		if g.cfg.Rate > 0 {
			if now := time.Now(); now.Sub(lastFlush) >= 100*time.Millisecond {
				lastFlush = now
				if err := bw.Flush(); err != nil {
					return fmt.Errorf("gen: write: %w", err)
				}
			}
		}
		return nil
	})
	if ferr := bw.Flush(); ferr != nil && err == nil {
		err = fmt.Errorf("gen: write: %w", ferr)
	}
	return n, err
}

// slot is a user's next click time.
type slot struct {
	at   int64
	user int32
}

// before orders slots by time, then user index, so that ties break the
// same way on every run.
func (s slot) before(o slot) bool {
	return s.at < o.at || (s.at == o.at && s.user < o.user)
}

// pending is a late message waiting for its release time.
type pending struct {
	release int64
	seq     uint64
	msg     Message
}

// before orders pending messages by release time, then by the order they
// were held back in.
func (p pending) before(o pending) bool {
	return p.release < o.release || (p.release == o.release && p.seq < o.seq)
}
