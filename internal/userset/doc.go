// Package userset encodes what a committed window keeps for roll-ups: per
// (url, country), its counters and the sorted set of its users' 64-bit
// hashes (aggregate.UserHash), compactly.
//
// # Format (version 2)
//
//	file   := "CSUS" version:byte strings:uvarint string* keys:uvarint entry* crc32c:uint32le
//	entry  := url:uvarint country:uvarint clicks users time_spent_ms samples bot_clicks n:uvarint size:uvarint set
//	string := len:uvarint bytes
//	set    := k:byte, then per hash its gap to the previous one (the first: to 0),
//	          Golomb-Rice coded with parameter k (see rice.go)
//
// An entry names its URL and country by their index among the file's
// strings, which are listed in order of first use, each once: most
// entries hold a user or two, so spelling the URL out in each (version 1,
// which Open still reads: entry := url:string country:string ...) made
// the keys weigh more than the sets.
// Entries are in strictly increasing (url, country) order; each set is
// strictly increasing. The hashes of n distinct users are close to uniform
// on 64 bits, so gaps are geometric-like around 2⁶⁴/n, and Rice coding
// with k = ⌊log₂(max/n)⌋ takes about 64 - log₂ n + 2 bits a hash, within
// about 1.5 bits of the entropy of such a set (TestBytesPerHash: 7.6 bytes
// a hash for a set of 100, 6.5 for 10,000, 5.7 for 1,000,000; plain delta
// varints took 8.9, 7.7 and 6.8, more than the raw 8 bytes for small sets).
// The size of each set is recorded, so a reader interested in some keys
// only (one key range of a roll-up) skips the others without decoding them.
//
// Open checks a whole file (the checksum, every length, the order of keys
// and hashes) before it hands out a Reader, so iterating cannot fail.
//
// # Usage
//
//	enc := userset.NewEncoder()
//	for _, e := range entries { // sorted by (URL, Country)
//		if err := enc.Add(e); err != nil { ... }
//	}
//	data := enc.Bytes()
//
//	r, err := userset.Open(data)
//	for rec, ok := r.Next(); ok; rec, ok = r.Next() {
//		it := rec.Set()
//		for h, ok := it.Next(); ok; h, ok = it.Next() { ... }
//	}
package userset
