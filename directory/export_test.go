package directory

// Hooks for the external tests in package directory_test.

import "sync"

// DecodeBodyOf decodes and field-checks a body of type t, as Verify does
// for a record's body: the fuzz target reaches every body type through it
// without having to sign each input.
func DecodeBodyOf(t RecordType, data []byte) (Body, error) { return decodeBody(t, data) }

// SignKEMBindingForTest signs kemKey as id's encapsulation key, as a key
// holder that signs two would.
func SignKEMBindingForTest(id *Identity, kemKey []byte) []byte {
	return id.signDomain(kemBindingDomain, kemBindingMessage(id.Public(), kemKey))
}

// SeenSeqsForTest is how many seqs an entry slot remembers.
func SeenSeqsForTest(s *State, pub PublicKey, id string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.entries[pub][id].seen)
}

// PadForTest makes NewEpoch pad to pad(n) packages instead of
// PaddedPackages(n) until the returned function is called: tests that
// build many rotations seal a handful of packages each instead of 64.
// Not for tests that run in parallel with others that build rotations.
func PadForTest(pad func(int) int) (restore func()) {
	old := paddingForTest
	paddingForTest = pad
	return func() { paddingForTest = old }
}

// SealBytesForTest seals bytes as Seal seals a record's encoding, so tests
// can seal encodings Encode would never make.
func SealBytesForTest(plain []byte, key ReadKey) []byte { return sealBytes(plain, key) }

// DecodedEntriesHeldForTest counts the decoded entries s keeps: in its
// slots' records and in its index's documents.
func DecodedEntriesHeldForTest(s *State) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, slots := range s.entries {
		for _, slot := range slots {
			if slot.best.body != nil {
				n++
			}
		}
	}
	s.index.mu.RLock()
	defer s.index.mu.RUnlock()
	for _, d := range s.index.docs {
		if d.entry != nil {
			n++
		}
	}
	return n
}

// PutHeldForTest puts e into ix as a State does: ix keeps r, e's record,
// and decodes e from it again when it needs it.
func PutHeldForTest(ix *Index, key string, pub PublicKey, r *Record, e *Entry) {
	ix.putHeld(key, pub, r, e)
}

// ComputeDigestForTest computes s's digest afresh, not from the one kept.
func ComputeDigestForTest(s *State) Hash {
	s.mu.RLock()
	defer s.mu.RUnlock()
	d, _ := s.viewDigest()
	return d
}

// IndexWaitingForTest is how many changes the state's index has yet to
// take (putLater, removeLater).
func IndexWaitingForTest(s *State) int {
	s.index.laterMu.Lock()
	defer s.index.laterMu.Unlock()
	return len(s.index.later)
}

// WholeRevocationDerivationsForTest is how many times the state has
// derived every revocation in its pool.
func WholeRevocationDerivationsForTest(s *State) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.revDerived.wholes
}

// HoldIndexForTest holds the state's index as a search does, until the
// function it returns is called (once or more).
func HoldIndexForTest(s *State) (release func()) {
	s.index.mu.RLock()
	return sync.OnceFunc(s.index.mu.RUnlock)
}
