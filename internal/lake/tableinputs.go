package lake

// TableInputs is what the snapshots of a table over the lake tell of its
// data: what the scheduler's late-data detection reads instead of the
// lake's manifests when the lake has one (icetable.InputTracker).
type TableInputs struct {
	// Seq is the sequence number of the table's current snapshot.
	Seq int64
	// Files are the table's data: the files of its current snapshot, or
	// the ones a compaction since rewrote them from (same events).
	Files []DataFile
	// Appends are the snapshots that appended data, of the current
	// snapshot's lineage still in the table, oldest first.
	Appends []TableAppend
	// Horizon is the sequence number of the oldest snapshot of that
	// lineage still in the table: appends before it are not known.
	Horizon int64
}

// TableAppend is the data one snapshot appended.
type TableAppend struct {
	Seq   int64
	Files []DataFile
}
