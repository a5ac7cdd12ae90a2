package directory_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// rebuild applies recs to a fresh state as a node's start does: in the
// order given, then again what was refused for a reason that may pass,
// until nothing more is taken.
func rebuild(t *testing.T, nw *dirtest.Network, recs []*directory.Record) *directory.State {
	t.Helper()
	s := nw.State()
	for len(recs) > 0 {
		var again []*directory.Record
		for _, r := range recs {
			switch _, err := s.Apply(r); {
			case err == nil, errors.Is(err, directory.ErrDuplicate):
			case directory.MayPass(err):
				again = append(again, r)
			default:
				t.Fatalf("apply %s: %v", r.Type, err)
			}
		}
		if len(again) == len(recs) {
			break
		}
		recs = again
	}
	return s
}

// Found by the lead engineer: a reader's revocation of its own key (ceiba
// revoke --self, a seized device's revocation certificate) dropped its
// grant, so after a restart, or on a node syncing from scratch, the
// self-revocation was refused as that of a key the network does not know:
// the key was no longer revoked there, and a steward's daemon restarted
// since did not rotate the read key away from it.
func TestReadersSelfRevocationSurvivesARestart(t *testing.T) {
	nw := dirtest.New(t, 1, 1)
	org, other, reader := dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	base := append([]*directory.Record{nw.Genesis, nw.FirstEpoch}, nw.FirstPages...)
	base = append(base, nw.Admit(t, org, "Org"), nw.Admit(t, other, "Otra"))
	grant := nw.Vouch(t, org, reader)
	selfRev := nw.Sign(t, &directory.Revocation{Key: reader.Public(), Reason: "me incautaron el teléfono", Issued: nw.Now.Unix()}, reader)

	s := nw.State()
	mustApply(t, s, base...)
	mustApply(t, s, grant, selfRev)
	if !s.IsRevoked(reader.Public()) || s.IsReader(reader.Public()) {
		t.Fatalf("after its own revocation: revoked %v, reader %v", s.IsRevoked(reader.Public()), s.IsReader(reader.Public()))
	}

	restarted := rebuild(t, nw, s.Records())
	if !restarted.IsRevoked(reader.Public()) {
		t.Fatal("after a restart the reader's own revocation is gone: the seized device's key is not revoked")
	}
	if restarted.IsReader(reader.Public()) {
		t.Fatal("after a restart the revoked reader reads again")
	}
	if restarted.Digest() != s.Digest() || restarted.Stats().Records != s.Stats().Records {
		t.Fatalf("rebuilt from its own records the state differs: %d records, want %d", restarted.Stats().Records, s.Stats().Records)
	}

	// A grant made after, or arriving after, is held too and admits
	// nobody: a node that got it before the revocation holds it.
	late := nw.Vouch(t, other, reader)
	if _, err := s.Apply(late); err != nil {
		t.Fatalf("a grant for the revoked reader key: %v", err)
	}
	if s.IsReader(reader.Public()) {
		t.Fatal("a grant made after the reader's revocation admits it again")
	}

	// A node syncing from scratch that gets the revocation first, and the
	// late grant before the first.
	fresh := rebuild(t, nw, append(append([]*directory.Record{selfRev, late}, base...), grant))
	if !fresh.IsRevoked(reader.Public()) || fresh.IsReader(reader.Public()) || fresh.Digest() != s.Digest() {
		t.Fatalf("a node syncing from scratch: revoked %v, reader %v, same digest %v", fresh.IsRevoked(reader.Public()), fresh.IsReader(reader.Public()), fresh.Digest() == s.Digest())
	}

	// A stranger's self-revocation is still refused, by a node that
	// restarts as by one that runs: one whose key only ever had a pending
	// entry (which its revocation would drop)...
	stranger := dirtest.MustIdentity(t)
	mustApply(t, s, nw.Sign(t, dirtest.SampleEntry("intruso", 1, nw.Now), stranger))
	strangerRev := nw.Sign(t, &directory.Revocation{Key: stranger.Public(), Issued: nw.Now.Unix()}, stranger)
	if _, err := s.Apply(strangerRev); !errors.Is(err, directory.ErrPendingSignature) {
		t.Fatalf("self-revocation of a key that only had a pending entry: %v", err)
	}
	// ...or nothing at all.
	nobody := dirtest.MustIdentity(t)
	if _, err := s.Apply(nw.Sign(t, &directory.Revocation{Key: nobody.Public(), Issued: nw.Now.Unix()}, nobody)); !errors.Is(err, directory.ErrPendingSignature) {
		t.Fatalf("self-revocation of a key the network never knew: %v", err)
	}
}

// When the stewards revoke the voucher too, the grant goes with it, and
// then the reader's self-revocation too: a node that learns of the
// voucher's revocation first refuses both, and a node must not hold more,
// nor revoke more keys, for having seen them in another order. The key can
// read nothing either way: its only grant is gone.
func TestReadersSelfRevocationGoesWithItsVouchersRevocation(t *testing.T) {
	nw := dirtest.New(t, 1, 1)
	org, reader := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	base := append([]*directory.Record{nw.Genesis, nw.FirstEpoch}, nw.FirstPages...)
	base = append(base, nw.Admit(t, org, "Org"))
	grant := nw.Vouch(t, org, reader)
	selfRev := nw.Sign(t, &directory.Revocation{Key: reader.Public(), Issued: nw.Now.Unix()}, reader)
	orgRev := nw.RevokeBy(t, org.Public())

	a := rebuild(t, nw, append(slices.Clone(base), grant, selfRev, orgRev))
	b := rebuild(t, nw, append(slices.Clone(base), grant, orgRev, selfRev))
	if a.Digest() != b.Digest() || a.Stats().Records != b.Stats().Records || a.IsRevoked(reader.Public()) != b.IsRevoked(reader.Public()) {
		t.Fatalf("the order of the voucher's and the reader's revocations matters: %d and %d records, reader revoked %v and %v",
			a.Stats().Records, b.Stats().Records, a.IsRevoked(reader.Public()), b.IsRevoked(reader.Public()))
	}
	if restarted := rebuild(t, nw, a.Records()); restarted.Digest() != a.Digest() {
		t.Fatal("rebuilt from its own records the state differs")
	}
	if a.IsReader(reader.Public()) {
		t.Fatal("the reader reads with its voucher and itself revoked")
	}
}
