// Package gen generates realistic synthetic clickstream messages for tests,
// benchmarks and demos.
//
// Simulated users click through sessions: exponential think times within a
// session (mean Config.MeanThink), idle gaps longer than SessionTimeout
// between sessions, fewer sessions starting at local night. Page popularity
// is Zipf-distributed; countries, cities and user agents follow weighted
// mixes. Each user's client shapes its messages the way real producers
// differ: integer or string user ids, RFC 3339 timestamps in UTC or a local
// offset or epoch milliseconds, escaped slashes or HTML characters, extra
// fields, blank countries. A configurable share of messages breaks the
// event contract, covering every event.Reason, and a share arrives late.
//
// The same Config and seed give the same bytes, message for message (except
// in realtime mode, which stamps events with the wall clock).
//
// Usage:
//
//	cfg := gen.NewConfig()
//	cfg.Seed, cfg.Events, cfg.Rate = 7, 100_000, 5_000
//	g, err := gen.New(cfg)
//	if err != nil {
//		return err
//	}
//	// Either write NDJSON...
//	n, err := g.WriteNDJSON(ctx, os.Stdout)
//	// ...or hand each message to a producer, paced at cfg.Rate.
//	n, err = g.Stream(ctx, func(m gen.Message) error {
//		return producer.Send(m.Key, m.Value, m.SentAt)
//	})
package gen
