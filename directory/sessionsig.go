package directory

// Signatures over session transcripts: proofs a peer gives over the wire
// that it holds an identity key, outside any record. Each purpose has its
// own domain, so a transcript signature can never pass for a record
// signature (those use the "ceiba/v1/<type>" domains) or for another
// purpose's transcript.

// SyncHelloDomain separates the sync hello's signature from every other
// use of an identity key.
const SyncHelloDomain = "ceiba/v2/sync-hello"

// AdmitDomain separates the connection admission proof's signature (a
// node proving, right after a connection comes up, that it holds an
// admitted key) from every other use of an identity key.
const AdmitDomain = "ceiba/v2/admit"

func transcriptDomain(d string) bool { return d == SyncHelloDomain || d == AdmitDomain }

// SignTranscript signs msg for the purpose named by domain, which must be
// one of the transcript domains above.
func (id *Identity) SignTranscript(domain string, msg []byte) []byte {
	if !transcriptDomain(domain) {
		// A caller-chosen domain could collide with a record domain and
		// turn a transcript into a signed record; refuse it loudly.
		panic("directory: unknown transcript domain " + domain)
	}
	return id.signDomain(domain, msg)
}

// VerifyTranscript reports whether sig is k's signature on msg for the
// purpose named by domain.
func VerifyTranscript(k PublicKey, domain string, msg, sig []byte) bool {
	if !transcriptDomain(domain) {
		return false
	}
	return verifyDomain(k, domain, msg, sig)
}

// MaxRecord is the largest signed record, in encoded bytes, the policy
// admits: what a node may be asked to hold for anyone.
func (p Policy) MaxRecord() int { return p.maxRecordBytes() }
