// Package faultproxy puts faults between the platform's processes and the
// services they use, for the chaos harness (internal/chaos) and tests.
//
// HTTP is a reverse proxy in front of an S3 endpoint that answers some
// requests with 503 SlowDown or 500 InternalError (S3 error documents),
// delays them, or drops their connections, on a seeded schedule or on
// demand:
//
//	p, _ := faultproxy.NewHTTP("http://127.0.0.1:7070", seed, logger)
//	defer p.Close()
//	p.SetRates(faultproxy.Rates{SlowDown: 0.2, Latency: 0.1, Delay: 300 * time.Millisecond})
//	p.Inject(faultproxy.DropAfter, 3) // the next three requests
//	// clients use p.URL() as their S3 endpoint
//
// TCP forwards a loopback port to one address (an etcd member, a worker)
// and can refuse, blackhole, delay or cut the connections:
//
//	t, _ := faultproxy.NewTCP("127.0.0.1:2379", logger)
//	defer t.Close()
//	t.Partition(faultproxy.Blackhole)
//	t.Heal()
package faultproxy
