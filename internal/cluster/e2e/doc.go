// Package e2e holds the multi-process tests of the cluster: a clickstream
// binary built once, a coordinator and workers as separate processes on a
// real etcd ($CLICKSTREAM_ETCD_ENDPOINTS, started by `make dev-up`), each
// test under its own etcd key prefix. They kill workers and coordinators
// with SIGKILL mid-job and check that the result is still exactly the
// fault-free one; run a cluster with mutual TLS (certificates of
// `clickstream certs`) and check who is refused, and how; run a job
// through every kind of credential and check that no output holds one;
// and drive the coordinator's web UI in headless Chromium (chromedp) while
// a job runs and a worker dies. `go test -short` skips them.
package e2e
