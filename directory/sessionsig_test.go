package directory

import "testing"

func TestTranscriptSignatures(t *testing.T) {
	id, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	other, _ := NewIdentity()
	msg := []byte("both peer IDs, a nonce, a time")
	sig := id.SignTranscript(SyncHelloDomain, msg)
	if !VerifyTranscript(id.Public(), SyncHelloDomain, msg, sig) {
		t.Fatal("a transcript signature does not verify")
	}
	if VerifyTranscript(other.Public(), SyncHelloDomain, msg, sig) {
		t.Fatal("a transcript signature verifies under another key")
	}
	if VerifyTranscript(id.Public(), SyncHelloDomain, append(msg, 0), sig) {
		t.Fatal("a transcript signature verifies for another message")
	}
	if VerifyTranscript(id.Public(), TypeEntry.domain(), msg, sig) {
		t.Fatal("a transcript signature passes for a record signature")
	}
	// A record signature must not pass for a transcript either.
	rec := id.signDomain(TypeEntry.domain(), msg)
	if VerifyTranscript(id.Public(), SyncHelloDomain, msg, rec) {
		t.Fatal("a record signature passes for a transcript")
	}
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("signing under a record domain did not panic")
			}
		}()
		id.SignTranscript(TypeEntry.domain(), msg)
	}()
	if (Policy{}).MaxRecord() != DefaultMaxRecordBytes || (Policy{MaxRecordBytes: 8192}).MaxRecord() != 8192 {
		t.Fatal("MaxRecord does not follow the policy")
	}
}
