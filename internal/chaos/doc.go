// Package chaos is the platform's chaos harness: it runs the whole
// pipeline — `clickstream gen` into a fresh Kafka topic, `clickstream
// ingest` into an S3 lake, coordinators and workers aggregating windows
// into an output store, the coordinator indexing into Elasticsearch — as
// real processes, injects faults from a seeded schedule, and checks the
// outcome against a fault-free run and an independent reference.
//
// Every run has its own etcd (1 or 3 members) and its own versitygw, both
// processes of the harness, so that it can kill, stop and restart them
// without disturbing the shared stack; every process reaches S3 through a
// faultproxy.HTTP and etcd and the workers through faultproxy.TCP links
// of its own. Kafka and Elasticsearch are the shared stack's: a run uses
// a fresh topic and alias there, and only the classes marked Stack (make
// chaos) restart them.
//
//	h, _ := chaos.New(chaos.Config{Binary: "bin/clickstream", Brokers: brokers, ESURL: es, Dir: dir, Seed: 42})
//	classes, _ := chaos.Select("worker-kill,etcd-kill")
//	rep, _ := h.Matrix(ctx, classes, 10, nil)
//	rep.WriteMarkdown(os.Stdout)
//
// The same seed replays the same schedule: which fault, which process,
// at which point of a job's progress, for how long. What a fault meets
// (which task a worker was running) depends on timing and may differ.
package chaos
