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
	e, pages, err := NewEpoch(net, 2, 1, Hash{}, committed, []Recipient{{Key: a.Public(), KEM: a.KEMPublic()}, {Key: b.Public(), KEM: b.KEMPublic()}}, time.Unix(1767268800, 0), DefaultMaxRecordBytes)
	if err != nil {
		t.Fatal(err)
	}
	// The signer reseals b's package to another key.
	tb := PackageTag(net, e.Number, e.Rotation, b.Public())
	resealed := 0
	for _, pg := range pages {
		for i, p := range pg.Packages {
			if p.Tag != tb {
				continue
			}
			pk, err := kem.NewPublicKey(b.KEMPublic())
			if err != nil {
				t.Fatal(err)
			}
			pg.Packages[i].Sealed, err = hpke.Seal(pk, pkgKDF, pkgAEAD, packageInfo(net, e.Number, e.Rotation, b.Public()), other[:])
			if err != nil {
				t.Fatal(err)
			}
			resealed++
		}
	}
	if resealed != 1 {
		t.Fatalf("b has %d packages, want 1", resealed)
	}
	if got, err := OpenKeyPackage(a, net, e, pages); err != nil || got != committed {
		t.Fatalf("the recipient sealed the committed key: %v", err)
	}
	if _, err := OpenKeyPackage(b, net, e, pages); !errors.Is(err, ErrKeyMismatch) {
		t.Fatalf("a package holding another key than the commitment: %v, want ErrKeyMismatch", err)
	}
	if VerifyEpochKey(net, e, other) || !VerifyEpochKey(net, e, committed) {
		t.Fatal("VerifyEpochKey does not tell the committed key from another")
	}
	// A package moved from another epoch record of the same number does not
	// open: the rotation ID is in its HPKE info.
	e2, pages2, err := NewEpoch(net, 2, 1, Hash{}, other, []Recipient{{Key: a.Public(), KEM: a.KEMPublic()}}, time.Unix(1767268800, 0), DefaultMaxRecordBytes)
	if err != nil {
		t.Fatal(err)
	}
	moved, ok := FindPackage(net, e2, pages2, a.Public())
	if !ok {
		t.Fatal("a has no package in the second rotation")
	}
	forged := []*EpochPage{{Number: 2, Rotation: e.Rotation, Packages: []Package{{Tag: PackageTag(net, 2, e.Rotation, a.Public()), Sealed: moved}}}}
	if _, err := OpenKeyPackage(a, net, e, forged); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("a package moved between rotations: %v, want ErrDecrypt", err)
	}
}
