package gen

import (
	"fmt"
	"math/rand/v2"
)

// city is a place users click from, with its UTC offset in minutes (fixed:
// the generator ignores daylight saving time).
type city struct {
	name   string
	offset int
}

// country is an ISO 3166-1 alpha-2 code with a traffic weight and cities.
type country struct {
	code   string
	weight int
	cities []city
}

// countries is the traffic mix, roughly that of a global web shop. City names
// are written as locals do, so that messages carry non-ASCII UTF-8.
var countries = []country{
	{"US", 28, []city{{"New York", -300}, {"Los Angeles", -480}, {"Chicago", -360}, {"Seattle", -480}, {"Austin", -360}, {"Miami", -300}}},
	{"IN", 10, []city{{"Mumbai", 330}, {"Delhi", 330}, {"Bengaluru", 330}, {"Chennai", 330}}},
	{"GB", 6, []city{{"London", 0}, {"Manchester", 0}, {"Edinburgh", 0}}},
	{"DE", 6, []city{{"Berlin", 60}, {"München", 60}, {"Hamburg", 60}, {"Köln", 60}}},
	{"BR", 5, []city{{"São Paulo", -180}, {"Rio de Janeiro", -180}, {"Brasília", -180}}},
	{"FR", 5, []city{{"Paris", 60}, {"Lyon", 60}, {"Marseille", 60}}},
	{"JP", 5, []city{{"東京", 540}, {"大阪", 540}, {"横浜", 540}}},
	{"CA", 4, []city{{"Toronto", -300}, {"Vancouver", -480}, {"Montréal", -300}}},
	{"AU", 3, []city{{"Sydney", 600}, {"Melbourne", 600}, {"Adelaide", 570}, {"Perth", 480}}},
	{"ES", 3, []city{{"Madrid", 60}, {"Barcelona", 60}, {"Sevilla", 60}}},
	{"IT", 3, []city{{"Roma", 60}, {"Milano", 60}, {"Napoli", 60}}},
	{"MX", 3, []city{{"Ciudad de México", -360}, {"Guadalajara", -360}, {"Monterrey", -360}}},
	{"NL", 2, []city{{"Amsterdam", 60}, {"Rotterdam", 60}}},
	{"SE", 2, []city{{"Stockholm", 60}, {"Göteborg", 60}}},
	{"PL", 2, []city{{"Warszawa", 60}, {"Kraków", 60}, {"Łódź", 60}}},
	{"KR", 2, []city{{"서울", 540}, {"부산", 540}}},
	{"SG", 2, []city{{"Singapore", 480}}},
	{"CH", 1, []city{{"Zürich", 60}, {"Genève", 60}}},
	{"ZA", 1, []city{{"Johannesburg", 120}, {"Cape Town", 120}}},
	{"NG", 1, []city{{"Lagos", 60}}},
	{"AR", 1, []city{{"Buenos Aires", -180}}},
	{"NP", 1, []city{{"काठमाडौं", 345}}},
}

// latin1 holds Latin-1 spellings of city names: a classic producer bug that
// yields invalid UTF-8.
var latin1 = map[string]string{
	"München":          "M\xfcnchen",
	"Köln":             "K\xf6ln",
	"São Paulo":        "S\xe3o Paulo",
	"Brasília":         "Bras\xedlia",
	"Montréal":         "Montr\xe9al",
	"Ciudad de México": "Ciudad de M\xe9xico",
	"Göteborg":         "G\xf6teborg",
	"Zürich":           "Z\xfcrich",
	"Genève":           "Gen\xe8ve",
}

// agent is a user agent with a traffic weight; app marks native mobile apps,
// whose events carry epoch-millisecond timestamps.
type agent struct {
	ua     string
	weight int
	app    bool
}

var agents = []agent{
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", 24, false},
	{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36", 16, false},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", 18, false},
	{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15", 7, false},
	{"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", 6, false},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0", 5, false},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0", 5, false},
	{"Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36", 4, false},
	{"Mozilla/5.0 (iPad; CPU OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1", 3, false},
	{"Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", 2, false},
	{"ShopApp/7.4.2 (iPhone15,2; iOS 18.1; Scale/3.00)", 6, true},
	{"ShopApp/7.4.1 (Android 14; SM-A546B; Build/UP1A.231005.007)", 5, true},
}

// botAgents are the user agents of bot users (Config.BotShare): search
// and SEO crawlers, AI crawlers, scripts and headless browsers, roughly in
// the proportions a shop's access log shows. Every one is a bot to
// package bots (TestBotAgentsAreBots).
var botAgents = []agent{
	{"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 14, false},
	{"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.69 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", 10, false},
	{"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)", 8, false},
	{"Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", 7, false},
	{"Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)", 5, false},
	{"Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)", 3, false},
	{"Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)", 5, false},
	{"facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", 2, false},
	{"python-requests/2.32.3", 6, false},
	{"curl/8.5.0", 2, false},
	{"Go-http-client/1.1", 2, false},
	{"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36", 4, false},
}

// siteHost prefixes every generated URL.
const siteHost = "https://shop.example.com"

var (
	categories = []string{"shoes", "dresses", "jackets", "jeans", "bags", "watches", "sunglasses", "kids", "home", "beauty", "sport", "outdoor", "electronics", "books", "toys", "garden"}
	searches   = []string{"red dress", "running shoes", "gift ideas", "winter jacket", "usb-c cable", "yoga mat", "l'oréal", "café table", "ベビー服", "size 42", "50% off", "a&b jeans"}
	helpTopics = []string{"shipping", "returns", "payment", "sizes", "contact", "privacy"}
	fixedPages = []string{"/cart", "/checkout", "/account", "/account/orders", "/wishlist", "/login", "/stores", "/sale"}
)

// makeURLs builds n distinct page URLs. URL 0 is the home page, the most
// popular under the Zipf draw; the rest are shuffled so that popularity does
// not follow page kind.
func makeURLs(rng *rand.Rand, n int) []string {
	urls := make([]string, 0, n)
	seen := make(map[string]bool, n)
	add := func(u string) {
		if !seen[u] && len(urls) < n {
			seen[u] = true
			urls = append(urls, u)
		}
	}
	add(siteHost + "/")
	for _, p := range fixedPages {
		add(siteHost + p)
	}
	for _, c := range categories {
		add(siteHost + "/category/" + c)
	}
	for len(urls) < n {
		switch k := rng.IntN(10); {
		case k < 6:
			add(fmt.Sprintf("%s/product/%d", siteHost, 10000+len(urls)))
		case k < 8:
			q := searches[rng.IntN(len(searches))]
			add(fmt.Sprintf("%s/search?q=%s&page=%d", siteHost, queryEscape(q), 1+rng.IntN(5)))
		case k < 9:
			add(fmt.Sprintf("%s/category/%s?sort=price&page=%d", siteHost, categories[rng.IntN(len(categories))], 1+rng.IntN(20)))
		default:
			add(fmt.Sprintf("%s/help/%s#%d", siteHost, helpTopics[rng.IntN(len(helpTopics))], len(urls)))
		}
	}
	rest := urls[1:]
	rng.Shuffle(len(rest), func(i, j int) { rest[i], rest[j] = rest[j], rest[i] })
	return urls
}

// queryEscape escapes a search term the way browsers do in query strings:
// '+' for space, percent-encoding for the rest that is not unreserved.
func queryEscape(s string) string {
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)*3)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b = append(b, c)
		case c == ' ':
			b = append(b, '+')
		default:
			b = append(b, '%', hex[c>>4], hex[c&15])
		}
	}
	return string(b)
}

// hourWeight is the relative chance that a session starts in each local hour
// of the day: quiet nights, busy evenings.
var hourWeight = [24]float64{
	0.35, 0.2, 0.12, 0.08, 0.08, 0.12, 0.25, 0.45, 0.6, 0.7, 0.75, 0.8,
	0.85, 0.8, 0.75, 0.75, 0.8, 0.85, 0.95, 1.0, 1.0, 0.95, 0.8, 0.55,
}

// weighted picks an index with probability proportional to weight(i).
type weighted struct {
	cum   []int
	total int
}

func newWeighted(n int, weight func(int) int) weighted {
	w := weighted{cum: make([]int, n)}
	for i := range n {
		w.total += weight(i)
		w.cum[i] = w.total
	}
	return w
}

func (w weighted) pick(rng *rand.Rand) int {
	x := rng.IntN(w.total)
	lo, hi := 0, len(w.cum)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if w.cum[mid] > x {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}
