package bots

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	useragent "github.com/medama-io/go-useragent"
)

// DefaultPatterns are matched, case-insensitively, as substrings of a user
// agent, after the library: automation tools and crawlers it does not
// know, or not under every spelling. "bot/" catches the many "SomethingBot/1.0"
// crawlers without flagging a phone named "CUBOT X30".
var DefaultPatterns = []string{
	"bot/", "crawler", "spider", "slurp",
	"curl/", "wget/", "python-requests", "python-urllib", "python-httpx", "aiohttp",
	"go-http-client", "okhttp", "java/", "apache-httpclient", "libwww-perl", "node-fetch", "axios/",
	"scrapy", "headlesschrome", "phantomjs", "selenium", "webdriver", "puppeteer", "playwright",
	"lighthouse", "pingdom", "uptimerobot", "facebookexternalhit", "gptbot", "chatgpt-user", "ccbot", "claudebot",
}

// Limits of a patterns file (ParsePatterns).
const (
	MaxPatterns      = 10_000
	MaxPatternLength = 256
)

// ErrBadPatterns is wrapped by the errors of ParsePatterns.
var ErrBadPatterns = errors.New("bots: bad patterns file")

// ParsePatterns reads a patterns file: one substring a line, matched
// case-insensitively anywhere in a user agent. Surrounding white space is
// trimmed; blank lines and lines starting with '#' are skipped. A pattern
// must be valid UTF-8 of at most MaxPatternLength bytes, and a file holds at
// most MaxPatterns of them. The patterns come back lower-cased, in file
// order, without duplicates.
func ParsePatterns(r io.Reader) ([]string, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 64<<10)
	var out []string
	seen := map[string]bool{}
	line := 0
	for sc.Scan() {
		line++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 || b[0] == '#' {
			continue
		}
		switch {
		case !utf8.Valid(b):
			return nil, fmt.Errorf("line %d: not UTF-8: %w", line, ErrBadPatterns)
		case len(b) > MaxPatternLength:
			return nil, fmt.Errorf("line %d: pattern of %d bytes, at most %d: %w", line, len(b), MaxPatternLength, ErrBadPatterns)
		}
		p := strings.ToLower(string(b))
		if seen[p] {
			continue
		}
		if len(out) == MaxPatterns {
			return nil, fmt.Errorf("line %d: more than %d patterns: %w", line, MaxPatterns, ErrBadPatterns)
		}
		seen[p] = true
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("after line %d: %w: %w", line, ErrBadPatterns, err)
	}
	return out, nil
}

// Classifier decides whether a user agent is a bot's. It is safe for
// concurrent use.
type Classifier struct {
	lib      *useragent.Parser
	patterns []string // lower-cased
}

// New returns a classifier of the library, DefaultPatterns and extra
// (matched case-insensitively).
func New(extra []string) *Classifier {
	c := &Classifier{lib: useragent.NewParser()}
	for _, p := range append(append([]string(nil), DefaultPatterns...), extra...) {
		if p = strings.ToLower(strings.TrimSpace(p)); p != "" {
			c.patterns = append(c.patterns, p)
		}
	}
	return c
}

// IsBot classifies ua without a cache. A nil classifier knows no bots.
func (c *Classifier) IsBot(ua string) bool {
	if c == nil || ua == "" {
		return false
	}
	if c.lib.Parse(ua).IsBot() {
		return true
	}
	lower := strings.ToLower(ua)
	for _, p := range c.patterns {
		if strings.Contains(lower, p) {
			return true
		}
	}
	return false
}

// Cache sizes: a direct-mapped front of recent agents, and a map of at
// most cacheEntries verdicts behind it, reset when full so that a stream of
// ever new agents costs a classification each, never unbounded memory.
const (
	cacheRecent  = 256 // a power of two
	cacheEntries = 16 << 10
	maxCachedLen = 1 << 10 // longer agents are classified every time
)

// Cache remembers the verdicts of a Classifier. It is not safe for
// concurrent use: give each goroutine its own.
type Cache struct {
	c      *Classifier
	m      map[string]bool
	recent [cacheRecent]struct {
		ua  string
		bot bool
	}
	// Misses counts the agents classified (for tests and benchmarks).
	Misses int
}

// NewCache returns an empty cache in front of c.
func (c *Classifier) NewCache() *Cache {
	return &Cache{c: c, m: make(map[string]bool)}
}

// IsBot is c.IsBot(ua), remembered.
func (k *Cache) IsBot(ua string) bool {
	if ua == "" {
		return false
	}
	slot := &k.recent[sample(ua)&(cacheRecent-1)]
	if slot.ua == ua { // interned agents share their bytes: a pointer compare
		return slot.bot
	}
	bot, ok := k.m[ua]
	if !ok {
		k.Misses++
		bot = k.c.IsBot(ua)
		if len(ua) > maxCachedLen {
			return bot
		}
		if len(k.m) >= cacheEntries {
			clear(k.m)
		}
		k.m[ua] = bot
	}
	slot.ua, slot.bot = ua, bot
	return bot
}

// sample hashes ua's length and a few of its bytes: agents differ mostly in
// their versions, near the middle and the end.
func sample(ua string) uint64 {
	n := len(ua)
	x := uint64(n)<<32 | uint64(ua[n-1])<<24 | uint64(ua[n/2])<<16 | uint64(ua[n/3])<<8 | uint64(ua[(2*n)/3])
	x *= 0x9e3779b97f4a7c15
	return x ^ x>>29
}
