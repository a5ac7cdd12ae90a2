package directory

import (
	"crypto/hpke"
	"errors"
	"testing"
	"time"
)

// Issue 20, finding 2: an epoch whose packages seal one key to one
// recipient and another key to another was accepted, and co-approvers
// cannot open each other's packages. Each recipient now checks its key
// against the epoch's commitment.
func TestEpochKeyCommitment(t *testing.T) {
	var net NetworkID
	net[0] = 7
	a, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	committed, other := NewReadKey(), NewReadKey()
	e, err := NewEpoch(net, 2, 1, Hash{}, committed, []Recipient{{Key: a.Public(), KEM: a.KEMPublic()}, {Key: b.Public(), KEM: b.KEMPublic()}}, time.Unix(1767268800, 0))
	if err != nil {
		t.Fatal(err)
	}
	// The signer reseals b's package to another key.
	for i, p := range e.Packages {
		if p.Recipient != b.Public() {
			continue
		}
		pk, err := kem.NewPublicKey(b.KEMPublic())
		if err != nil {
			t.Fatal(err)
		}
		e.Packages[i].Sealed, err = hpke.Seal(pk, pkgKDF, pkgAEAD, packageInfo(net, e.Number, e.Rotation, b.Public()), other[:])
		if err != nil {
			t.Fatal(err)
		}
	}
	if got, err := OpenKeyPackage(a, net, e); err != nil || got != committed {
		t.Fatalf("the recipient sealed the committed key: %v", err)
	}
	if _, err := OpenKeyPackage(b, net, e); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("a package holding another key than the commitment: %v, want ErrKeyMismatch", err)
	}
	if VerifyEpochKey(net, e, other) || !VerifyEpochKey(net, e, committed) {
		t.Fatal("VerifyEpochKey does not tell the committed key from another")
	}
	// A package moved from another epoch record of the same number does not
	// open: the rotation ID is in its HPKE info.
	e2, err := NewEpoch(net, 2, 1, Hash{}, other, []Recipient{{Key: a.Public(), KEM: a.KEMPublic()}}, time.Unix(1767268800, 0))
	if err != nil {
		t.Fatal(err)
	}
	e2.Rotation, e2.KeyCommit = e.Rotation, e.KeyCommit
	if _, err := OpenKeyPackage(a, net, e2); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("a package moved between rotations: %v, want ErrDecrypt", err)
	}
}
