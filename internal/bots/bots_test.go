package bots

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// agentTable is the classification contract: real agents of people,
// crawlers and tools, and the edges (an empty agent, a phone named like a
// bot).
var agentTable = []struct {
	ua  string
	bot bool
}{
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", false},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", false},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", false},
	{"Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", false},
	{"Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36", false},
	{"ShopApp/7.4.2 (iPhone15,2; iOS 18.1; Scale/3.00)", false},
	{"", false},
	{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", true},
	{"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", true},
	{"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", true},
	{"Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", true},
	{"Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", true},
	{"Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)", true},
	{"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)", true},
	{"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", true},
	{"python-requests/2.32.3", true},
	{"curl/8.5.0", true},
	{"Wget/1.21.4", true},
	{"Go-http-client/1.1", true},
	{"Scrapy/2.11.2 (+https://scrapy.org)", true},
	{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36", true},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Selenium/4.27", true},
}

func TestIsBot(t *testing.T) {
	c := New(nil)
	cache := c.NewCache()
	for _, tc := range agentTable {
		if got := c.IsBot(tc.ua); got != tc.bot {
			t.Errorf("IsBot(%q) = %v, want %v", tc.ua, got, tc.bot)
		}
		for range 2 { // a miss, then a hit
			if got := cache.IsBot(tc.ua); got != tc.bot {
				t.Errorf("Cache.IsBot(%q) = %v, want %v", tc.ua, got, tc.bot)
			}
		}
	}
	if want := len(agentTable) - 1; cache.Misses != want { // the empty agent is never classified
		t.Errorf("cache classified %d agents, want %d", cache.Misses, want)
	}
}

func TestPatternsFile(t *testing.T) {
	f, err := os.Open("testdata/agents.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	extra, err := ParsePatterns(f)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := strings.Join(extra, "|"), "internalmonitor|loadtester/"; got != want {
		t.Fatalf("ParsePatterns = %q, want %q", got, want)
	}
	human := "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0 InternalMonitor"
	if New(nil).IsBot(human) {
		t.Fatalf("IsBot(%q) without the file = true", human)
	}
	c := New(extra)
	for _, ua := range []string{human, "LOADTESTER/1.0"} {
		if !c.IsBot(ua) {
			t.Errorf("IsBot(%q) with the file = false", ua)
		}
	}
}

func TestParsePatternsErrors(t *testing.T) {
	for name, in := range map[string]string{
		"not utf-8": "ok\n\xff\xfe\n",
		"too long":  strings.Repeat("x", MaxPatternLength+1),
		"too many":  manyPatterns(MaxPatterns + 1),
		"huge line": strings.Repeat("y", 70<<10),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := ParsePatterns(strings.NewReader(in)); !errors.Is(err, ErrBadPatterns) {
				t.Fatalf("ParsePatterns = %v, want ErrBadPatterns", err)
			}
		})
	}
}

// TestCacheBounded feeds more distinct agents than the cache keeps: verdicts
// stay right and the map stays bounded.
func TestCacheBounded(t *testing.T) {
	cache := New(nil).NewCache()
	for i := range cacheEntries + 100 {
		ua := "agent-" + strings.Repeat("x", i%5) + string(rune('a'+i%26)) + "/" + strconv.Itoa(i)
		if i%3 == 0 {
			ua = "curl/" + strconv.Itoa(i)
		}
		if got, want := cache.IsBot(ua), i%3 == 0; got != want {
			t.Fatalf("IsBot(%q) = %v, want %v", ua, got, want)
		}
	}
	if len(cache.m) > cacheEntries {
		t.Fatalf("cache holds %d verdicts, at most %d", len(cache.m), cacheEntries)
	}
	long := "curl/" + strings.Repeat("9", maxCachedLen)
	for range 2 { // classified each time, never cached
		if !cache.IsBot(long) {
			t.Fatal("a long agent lost its verdict")
		}
	}
	if _, cached := cache.m[long]; cached {
		t.Error("an agent over maxCachedLen was cached")
	}
}

func manyPatterns(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "p%d\n", i)
	}
	return b.String()
}

func FuzzParsePatterns(f *testing.F) {
	f.Add([]byte("# comment\nFoo\n\n  bar/ \nfoo\n"))
	f.Add([]byte("\xff\n"))
	f.Add([]byte(strings.Repeat("z", MaxPatternLength+1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ParsePatterns(strings.NewReader(string(data)))
		if err != nil {
			if !errors.Is(err, ErrBadPatterns) {
				t.Fatalf("error %v does not wrap ErrBadPatterns", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, p := range ps {
			if p == "" || p != strings.ToLower(p) || strings.TrimSpace(p) != p || p[0] == '#' || seen[p] || len(p) > MaxPatternLength {
				t.Fatalf("bad pattern %q in %q", p, ps)
			}
			seen[p] = true
		}
		// Every pattern makes an agent containing it a bot.
		c := New(ps)
		for _, p := range ps {
			if !c.IsBot("Mozilla/5.0 "+strings.ToUpper(p)) && strings.ToLower(strings.ToUpper(p)) == p {
				t.Fatalf("pattern %q does not match", p)
			}
		}
	})
}

func FuzzCache(f *testing.F) {
	for _, tc := range agentTable {
		f.Add(tc.ua)
	}
	c := New(nil)
	cache := c.NewCache()
	f.Fuzz(func(t *testing.T, ua string) {
		if got, want := cache.IsBot(ua), c.IsBot(ua); got != want {
			t.Fatalf("Cache.IsBot(%q) = %v, Classifier.IsBot = %v", ua, got, want)
		}
	})
}

func TestNilClassifier(t *testing.T) {
	var c *Classifier
	if c.IsBot("curl/8.5.0") || c.NewCache().IsBot("curl/8.5.0") {
		t.Fatal("a nil classifier knows a bot")
	}
}

// BenchmarkCache: the verdict on an agent seen before, as ingest asks it
// once per event (the agents are the interner's shared strings), and the
// classification of a new one.
func BenchmarkCache(b *testing.B) {
	c := New(nil)
	agents := make([]string, len(agentTable))
	for i, tc := range agentTable {
		agents[i] = tc.ua
	}
	b.Run("hit", func(b *testing.B) {
		cache := c.NewCache()
		for b.Loop() {
			for _, ua := range agents {
				cache.IsBot(ua)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(agents)), "ns/agent")
	})
	b.Run("miss", func(b *testing.B) {
		for b.Loop() {
			for _, ua := range agents {
				c.IsBot(ua)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(agents)), "ns/agent")
	})
}
