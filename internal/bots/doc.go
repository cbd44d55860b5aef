// Package bots tells the user agents of crawlers and automation tools from
// those of people.
//
// A Classifier asks a maintained user-agent library
// (github.com/medama-io/go-useragent, whose trie knows the common crawlers,
// HTTP libraries and headless browsers) and then a list of case-insensitive
// substrings: DefaultPatterns, plus those of a patterns file
// (ParsePatterns; ingest's --bot-agents-file). An empty user agent is not a
// bot: nothing is known about it.
//
// Agents repeat heavily in a click stream (a few hundred distinct strings
// over millions of events), so each parsing goroutine keeps a Cache of
// verdicts in front of the classifier:
//
//	cl := bots.New(extra) // shared, safe for concurrent use
//	cache := cl.NewCache() // one per goroutine
//	e.IsBot = cache.IsBot(e.UserAgent)
package bots
