package indexer

import "errors"

// Sentinel errors. Errors of the package wrap one of them or a
// *StatusError, or are context errors.
var (
	// ErrClosed reports a call on a closed Indexer (or one that Close
	// interrupted).
	ErrClosed = errors.New("indexer: closed")
	// ErrRetriesExhausted reports documents or requests that still failed
	// with a 429, a 5xx or a network error when Config.RetryTimeout ran out.
	ErrRetriesExhausted = errors.New("indexer: retries exhausted")
	// ErrRequestRefused reports a bulk request or item that Elasticsearch
	// refused for a reason other than the document's content (401, 403, a
	// missing alias...): nothing was dead-lettered, the call failed.
	ErrRequestRefused = errors.New("indexer: request refused")
	// ErrRejected reports that some documents were rejected and written to
	// the dead-letter store (Run returns it; IndexResult reports the count
	// in its Report without failing).
	ErrRejected = errors.New("indexer: documents rejected")
	// ErrCountMismatch reports a window whose document count after
	// indexing is not its row count minus the rejected documents.
	ErrCountMismatch = errors.New("indexer: document count mismatch")
	// ErrBadResult reports a result that cannot be indexed as given (mixed
	// windows, duplicate rows, no dead-letter store).
	ErrBadResult = errors.New("indexer: bad result")
	// ErrAliasIsIndex reports a concrete index named like the alias.
	ErrAliasIsIndex = errors.New("indexer: a concrete index has the alias's name")
	// ErrNoIndex reports a query of an alias (or index) that does not exist.
	ErrNoIndex = errors.New("indexer: no such alias or index")
	// ErrIndexExists reports a rebuild into an index that already exists.
	ErrIndexExists = errors.New("indexer: index already exists")
)
