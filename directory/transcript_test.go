package directory_test

import (
	"bytes"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

func sampleTranscript(id *directory.Identity) directory.InviteTranscript {
	return directory.InviteTranscript{TokenHash: directory.InviteTokenHash([]byte("a sixteen-byte t")),
		Inviter: []byte("inviter peer"), Redeemer: []byte("redeemer peer"), Key: id.Public(), KEM: id.KEMPublic()}
}

// The transcript signature covers every field: changing any one of them,
// or presenting it under another key, fails.
func TestInviteTranscriptBindsEveryField(t *testing.T) {
	id, other := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	tr := sampleTranscript(id)
	sig, err := directory.SignInviteTranscript(id, tr)
	if err != nil {
		t.Fatal(err)
	}
	if !directory.VerifyInviteTranscript(tr, sig) {
		t.Fatal("a transcript's own signature does not verify")
	}
	if _, err := directory.SignInviteTranscript(other, tr); err == nil {
		t.Fatal("a key signed a transcript naming another key")
	}
	changes := map[string]func(*directory.InviteTranscript){
		"token":    func(x *directory.InviteTranscript) { x.TokenHash[0] ^= 1 },
		"inviter":  func(x *directory.InviteTranscript) { x.Inviter = []byte("another inviter") },
		"redeemer": func(x *directory.InviteTranscript) { x.Redeemer = []byte("another redeemer") },
		"key":      func(x *directory.InviteTranscript) { x.Key = other.Public() },
		"KEM key":  func(x *directory.InviteTranscript) { x.KEM = other.KEMPublic() },
		// Moving bytes from one peer ID to the other keeps the
		// concatenation; the length prefixes tell them apart.
		"peer ID boundary": func(x *directory.InviteTranscript) {
			x.Inviter, x.Redeemer = []byte("inviter peerr"), []byte("edeemer peer")
		},
	}
	for what, change := range changes {
		x := tr
		x.KEM = bytes.Clone(tr.KEM)
		change(&x)
		if directory.VerifyInviteTranscript(x, sig) {
			t.Errorf("the signature still verifies with another %s", what)
		}
	}
	// The KEM binding is signed by the same key over a different domain;
	// it must not pass as a transcript signature.
	if directory.VerifyInviteTranscript(tr, id.KEMBinding()) {
		t.Fatal("a KEM binding verifies as a transcript signature")
	}
}

// A welcome opens only for the key and transcript it was sealed to.
func TestInviteWelcomeOpensOnlyForItsTranscript(t *testing.T) {
	id, other := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	tr := sampleTranscript(id)
	key := directory.NewReadKey()
	w := &directory.InviteWelcome{Network: directory.NetworkID{9}, Role: "reader", Keys: map[uint64][]byte{3: key[:]}}
	sealed, err := directory.SealInviteWelcome(tr, w)
	if err != nil {
		t.Fatal(err)
	}
	got, keys, err := directory.OpenInviteWelcome(id, tr, sealed)
	if err != nil || got.Network != w.Network || got.Role != "reader" || keys[3] != key {
		t.Fatalf("OpenInviteWelcome = %+v, %v, %v", got, keys, err)
	}
	other2 := tr
	other2.Redeemer = []byte("someone else's connection")
	if _, _, err := directory.OpenInviteWelcome(id, other2, sealed); err == nil {
		t.Fatal("a welcome opened under another transcript")
	}
	if _, _, err := directory.OpenInviteWelcome(other, sampleTranscript(other), sealed); err == nil {
		t.Fatal("another key opened the welcome")
	}
}
