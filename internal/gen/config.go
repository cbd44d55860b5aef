package gen

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/dataco/clickstream/internal/event"
)

// SessionTimeout is the inactivity that ends a session: clicks within a
// session are closer than this, and sessions of a user are further apart.
const SessionTimeout = 30 * time.Minute

// Defaults of NewConfig.
const (
	DefaultSeed              = 1
	DefaultEvents            = 1_000_000
	DefaultUsers             = 10_000
	DefaultURLs              = 2_000
	DefaultInvalidRatio      = 0.01
	DefaultLateRatio         = 0.01
	DefaultMaxLateness       = 10 * time.Minute
	DefaultMeanThink         = 40 * time.Second
	DefaultMeanSessionClicks = 8.0
	DefaultMeanSessionGap    = 3 * time.Hour
	DefaultZipfS             = 1.1
	DefaultBotShare          = 0.02
)

// How bot users click (Config.BotShare): crawl sessions of many quick
// requests, at any hour.
const (
	botMeanThink         = 3 * time.Second
	botMeanSessionClicks = 40.0
)

// DefaultStart is the default simulated start time: fixed, so that the
// default output is the same everywhere.
var DefaultStart = time.Date(2026, time.January, 5, 0, 0, 0, 0, time.UTC)

// ErrInvalidConfig is wrapped by every error of Config.Validate.
var ErrInvalidConfig = errors.New("gen: invalid config")

// Config shapes the synthetic traffic. Build it with NewConfig, adjust, and
// check it with Validate (New does).
type Config struct {
	// Seed makes the output reproducible: the same Config (outside
	// realtime mode) yields the same bytes.
	Seed int64
	// Events is the number of messages to produce, valid and invalid;
	// 0 means no end.
	Events int
	// Users is the number of simulated users; URLs the number of pages.
	Users int
	URLs  int
	// InvalidRatio is the share of messages that break the event contract,
	// spread over every rejection reason.
	InvalidRatio float64
	// LateRatio is the share of messages delivered late: held back for up
	// to MaxLateness (exponentially, mean MaxLateness/4) after their event
	// time, so they arrive out of event-time order.
	LateRatio   float64
	MaxLateness time.Duration
	// Start is the simulated time of the first clicks.
	Start time.Time
	// Realtime stamps events with the wall clock (Now) when they are
	// generated instead of simulated time; Start is then unused. Users,
	// sessions and URL choice follow the same simulation, but gaps between
	// a user's clicks reflect the pace of the caller, not the think times.
	Realtime bool
	// Now is the clock of realtime mode; nil means time.Now.
	Now func() time.Time
	// Rate caps Stream and WriteNDJSON at this many messages per second;
	// 0 means as fast as possible.
	Rate float64
	// MeanThink is the mean of the exponential time between two clicks of
	// a session (capped below SessionTimeout).
	MeanThink time.Duration
	// MeanSessionClicks is the mean number of clicks per session
	// (geometric, at least 1).
	MeanSessionClicks float64
	// MeanSessionGap is the mean of the exponential idle time between two
	// sessions of a user, on top of SessionTimeout; night hours (local to
	// the user) are further thinned out.
	MeanSessionGap time.Duration
	// ZipfS is the exponent s > 1 of URL popularity, P(rank k) ∝ (1+k)^-s.
	ZipfS float64
	// MaxSize is the message size limit that too_large messages exceed;
	// 0 means event.MaxSize. Set it to the ingest limit.
	MaxSize int
	// BotShare is the share of users that are bots: crawlers, scripts
	// and headless browsers, with their own user agents (package bots
	// flags them), sending many quick clicks a session at any hour. Their
	// messages are marked Message.Bot.
	BotShare float64
}

// NewConfig returns the default configuration.
func NewConfig() Config {
	return Config{
		Seed:              DefaultSeed,
		Events:            DefaultEvents,
		Users:             DefaultUsers,
		URLs:              DefaultURLs,
		InvalidRatio:      DefaultInvalidRatio,
		LateRatio:         DefaultLateRatio,
		MaxLateness:       DefaultMaxLateness,
		Start:             DefaultStart,
		MeanThink:         DefaultMeanThink,
		MeanSessionClicks: DefaultMeanSessionClicks,
		MeanSessionGap:    DefaultMeanSessionGap,
		ZipfS:             DefaultZipfS,
		MaxSize:           event.MaxSize,
		BotShare:          DefaultBotShare,
	}
}

// AddFlags binds the configuration to flags of fs, with c's values as
// defaults.
func (c *Config) AddFlags(fs *pflag.FlagSet) {
	fs.Int64Var(&c.Seed, "seed", c.Seed, "random seed; the same seed gives the same messages")
	fs.IntVar(&c.Events, "events", c.Events, "number of messages to generate (0: no end)")
	fs.IntVar(&c.Users, "users", c.Users, "number of simulated users")
	fs.IntVar(&c.URLs, "urls", c.URLs, "number of distinct page URLs")
	fs.Float64Var(&c.InvalidRatio, "invalid-ratio", c.InvalidRatio, "share of messages that break the event contract")
	fs.Float64Var(&c.LateRatio, "late-ratio", c.LateRatio, "share of messages delivered late, out of event-time order")
	fs.DurationVar(&c.MaxLateness, "max-lateness", c.MaxLateness, "longest delay of a late message")
	fs.TextVar(&c.Start, "start", c.Start, "simulated start time, RFC 3339")
	fs.BoolVar(&c.Realtime, "realtime", c.Realtime, "stamp events with the wall clock instead of simulated time")
	fs.Float64Var(&c.Rate, "rate", c.Rate, "messages per second (0: as fast as possible)")
	fs.DurationVar(&c.MeanThink, "think-time", c.MeanThink, "mean time between clicks within a session")
	fs.Float64Var(&c.MeanSessionClicks, "session-clicks", c.MeanSessionClicks, "mean clicks per session")
	fs.DurationVar(&c.MeanSessionGap, "session-gap", c.MeanSessionGap, "mean idle time between sessions, beyond the 30m session timeout")
	fs.Float64Var(&c.ZipfS, "zipf-s", c.ZipfS, "URL popularity exponent (> 1)")
	fs.IntVar(&c.MaxSize, "max-size", c.MaxSize, "message size limit that too_large messages exceed")
	fs.Float64Var(&c.BotShare, "bot-share", c.BotShare, "share of users that are bots (crawler and script user agents, many quick clicks)")
}

// Validate reports the first invalid setting.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("gen: "+format+": %w", append(args, ErrInvalidConfig)...)
	}
	switch {
	case c.Events < 0:
		return bad("events must be >= 0, got %d", c.Events)
	case c.Users < 1:
		return bad("users must be >= 1, got %d", c.Users)
	case c.URLs < 1:
		return bad("urls must be >= 1, got %d", c.URLs)
	case !(c.InvalidRatio >= 0 && c.InvalidRatio <= 1):
		return bad("invalid ratio must be within [0, 1], got %g", c.InvalidRatio)
	case !(c.LateRatio >= 0 && c.LateRatio <= 1):
		return bad("late ratio must be within [0, 1], got %g", c.LateRatio)
	case c.LateRatio > 0 && c.MaxLateness <= 0:
		return bad("max lateness must be > 0 when late ratio is > 0, got %v", c.MaxLateness)
	case !c.Realtime && (c.Start.IsZero() || c.Start.Year() < 1 || c.Start.Year() > 9000):
		return bad("start must be set, within years 1 to 9000, got %v", c.Start)
	case !(c.Rate >= 0):
		return bad("rate must be >= 0, got %g", c.Rate)
	case c.MeanThink <= 0 || c.MeanThink >= SessionTimeout:
		return bad("think time must be within (0, %v), got %v", SessionTimeout, c.MeanThink)
	case !(c.MeanSessionClicks >= 1):
		return bad("session clicks must be >= 1, got %g", c.MeanSessionClicks)
	case c.MeanSessionGap < 0:
		return bad("session gap must be >= 0, got %v", c.MeanSessionGap)
	case !(c.ZipfS > 1 && c.ZipfS <= 10):
		return bad("zipf s must be within (1, 10], got %g", c.ZipfS)
	case !(c.BotShare >= 0 && c.BotShare <= 1):
		return bad("bot share must be within [0, 1], got %g", c.BotShare)
	case c.MaxSize < 0:
		return bad("max size must be >= 0, got %d", c.MaxSize)
	}
	return nil
}
