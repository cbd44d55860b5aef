// Package indexer loads committed aggregation results into Elasticsearch,
// where the demo and dashboards query them.
//
// One document per result row, with the id DocID(window, url, country), so
// that indexing a window again replaces its documents and never duplicates
// them. Documents are written through an alias (default
// "clickstream-aggregates") to a concrete index ("<alias>-v1" at first),
// whose explicit, strict mapping is also installed as an index template
// for "<alias>-*"; Rebuild fills a new concrete index and swaps the alias
// to it in one atomic _aliases request.
//
// One Indexer per process holds one esutil.BulkIndexer. Failures are
// retried at two levels: the client retries each HTTP request on network
// errors, 429 and 5xx (exponential backoff with jitter, MaxRetries), and
// IndexResult sends again the documents whose bulk item or request still
// failed that way, until Config.RetryTimeout. Documents Elasticsearch
// refuses for their content (a 400: strict mapping, immense term...) are
// written with the error to a dead-letter store at
// "_index_rejected/<window>/<job>.ndjson", never dropped. After indexing,
// documents of the window that are not in the new result are deleted and
// the window's document count is checked against the result.
//
// Indexing a committed result:
//
//	cfg := indexer.NewConfig()
//	cfg.Addresses = []string{"http://127.0.0.1:9200"}
//	ix, err := indexer.New(cfg, logger, prometheus.DefaultRegisterer)
//	if err != nil { ... }
//	defer ix.Close(context.Background())
//
//	out, err := lake.Open(ctx, "s3://results/2026-11-27T00", lake.S3Options{})
//	rows, meta, err := results.ReadResult(ctx, out)
//	rep, err := ix.IndexResult(ctx, rows, meta, out) // dead letters next to the result
//	if err != nil { ... }
//	if rep.Rejected > 0 { ... } // see rep.DeadLetters
//
// Querying it:
//
//	top, err := indexer.TopURLs(ctx, ix.Client(), ix.Alias(), &aggregate.Window{From: from, To: to}, 10)
//	fmt.Println(indexer.TopURLsCurl("http://127.0.0.1:9200", ix.Alias(), nil, 10))
//
// The command line is `clickstream index --results URI --es URL`.
package indexer
