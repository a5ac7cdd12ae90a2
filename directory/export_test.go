package directory

// Hooks for the external tests in package directory_test.

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
