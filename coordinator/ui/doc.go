// Package ui is the coordinator's web UI: live pages of the cluster's jobs
// (with each job's tasks and a timeline of their attempts), workers,
// scheduled windows and ingest sources, rendered on the server with
// html/template, and the same data as JSON under /api/. A page's live part
// is fetched again every second by a small script (/static/ui.js, no
// build step); ?fragment=1 renders only that part.
//
// The UI reads everything through a Cluster, which the coordinator
// implements from etcd and the lake, so any coordinator of a cluster, the
// leader or a standby, shows the whole cluster. Every request's reads are
// bounded (pages of jobs, a cap on tasks and windows) and end with the
// request, or after a few seconds.
//
// Under mutual TLS (Options.TLS) every page and endpoint requires a client
// certificate of role viewer, operator or coordinator.
//
//	h, err := ui.New(cluster, ui.Options{TLS: src, Logger: logger})
//	if err != nil {
//		return err
//	}
//	h.Mount(mux) // /, /jobs/{id}, /workers, /windows, /ingest, /api/..., /static/
package ui
