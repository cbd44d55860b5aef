package aggregate

// userHashBasis is the FNV-1a 64 offset basis of UserHash: the standard
// basis 0xcbf29ce484222325 XOR the 64-bit golden ratio 0x9e3779b97f4a7c15.
const (
	userHashBasis = 0xcbf29ce484222325 ^ 0x9e3779b97f4a7c15
	fnvPrime64    = 0x100000001b3
)

// UserHash is the 64-bit user hash stored in Row.UserHashes, the mergeable
// set of distinct users:
//
//	h := FNV-1a 64 of the id's bytes, started from offset basis
//	     0xcbf29ce484222325 ^ 0x9e3779b97f4a7c15 (not the standard basis)
//	return fmix64(h)   // MurmurHash3's 64-bit finalizer
//
// lake.Bucket is murmur3_x86_32 modulo the bucket count (Iceberg's bucket
// transform), a hash unrelated to this one. The finalizer makes every output
// bit depend on every state bit (an FNV state's low bits depend only on the
// low bits of the basis and of the input), so UserHash does not correlate
// with the bucket (TestUserHashIndependentOfBucket checks this). The function is part
// of the encoded partial format: changing it needs a new format version.
func UserHash(userID string) uint64 {
	h := uint64(userHashBasis)
	for i := 0; i < len(userID); i++ {
		h ^= uint64(userID[i])
		h *= fnvPrime64
	}
	return fmix64(h)
}

// fmix64 is the finalizer of MurmurHash3 (x64), a bijection on uint64.
func fmix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
