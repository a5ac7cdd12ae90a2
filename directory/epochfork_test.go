package directory_test

import (
	"bytes"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
)

// epochForkFixture is a 2-of-3 network at epoch 1, sealed to the three
// stewards, an organization and a reader, with the reader's device then
// revoked by the stewards: one steward may rotate alone once.
type epochForkFixture struct {
	*rejectFixture
	all  []directory.Recipient
	base []*directory.Record // epoch 1, its pages and the revocation
	rev  *directory.Record
}

func newEpochForkFixture(t *testing.T) *epochForkFixture {
	f := newRejectFixture(t)
	nw, st := f.nw, f.nw.Stewards
	all := []directory.Recipient{
		{Key: st[0].Public(), KEM: st[0].KEMPublic()},
		{Key: st[1].Public(), KEM: st[1].KEMPublic()},
		{Key: st[2].Public(), KEM: st[2].KEMPublic()},
		{Key: f.org.Public(), KEM: f.org.KEMPublic()},
		{Key: f.reader.Public(), KEM: f.reader.KEMPublic()},
	}
	first, firstPages := nw.Rotation(t, 1, 1, directory.Hash{}, nw.Key, all, st[0], st[1])
	rev := nw.RevokeBy(t, f.reader.Public()) // a reader's device seized
	return &epochForkFixture{rejectFixture: f, all: all, base: append([]*directory.Record{first, rev}, firstPages...), rev: rev}
}

// groundLoneRotation is what a compromised st[2] makes: epoch 2 naming the
// same revocation, sealed to itself only, its random rotation ID varied
// until its proposal ID is below honest's.
func (f *epochForkFixture) groundLoneRotation(t *testing.T, honest *directory.Record) []*directory.Record {
	t.Helper()
	st := f.nw.Stewards
	for tries := 0; tries <= 200; tries++ {
		lone, pages := f.nw.Rotation(t, 2, 1, f.rev.ProposalID(), directory.NewReadKey(), f.all[2:3], st[2])
		a, b := lone.ProposalID(), honest.ProposalID()
		if bytes.Compare(a[:], b[:]) < 0 {
			return append([]*directory.Record{lone}, pages...)
		}
	}
	t.Fatal("could not grind a lower proposal ID")
	return nil
}

// effectiveKey opens the last effective epoch as id, failing the test if
// it is not epoch 2.
func (f *epochForkFixture) effectiveKey(t *testing.T, s *directory.State, id *directory.Identity) (directory.ReadKey, error) {
	t.Helper()
	eps := s.Epochs()
	e := eps[len(eps)-1]
	if e.Number != 2 {
		t.Fatalf("effective epoch %d, want 2", e.Number)
	}
	return directory.OpenKeyPackage(id, f.nw.ID, e, s.EpochPages(e))
}

// After a revocation by the stewards, two of them (the threshold) rotate,
// sealing the new key to every remaining recipient, and nodes adopt it. A
// compromised third steward's lone rotation of the same number, with a
// lower proposal ID, must not replace it: with the lowest ID winning, it
// did, and every organization and the other stewards lost the read key.
func TestLoneRotationDoesNotReplaceThresholdRotation(t *testing.T) {
	f := newEpochForkFixture(t)
	st := f.nw.Stewards
	key := directory.NewReadKey()
	honest, honestPages := f.nw.Rotation(t, 2, 1, f.rev.ProposalID(), key, f.all[:4], st[0], st[1])
	lone := f.groundLoneRotation(t, honest)

	s := f.state(t, append(append(f.base, honest), honestPages...)...)
	if k, err := f.effectiveKey(t, s, f.org); err != nil || k != key {
		t.Fatalf("before the lone rotation, the organization opens epoch 2: %v", err)
	}
	mustApply(t, s, lone...)
	if k, err := f.effectiveKey(t, s, f.org); err != nil || k != key {
		t.Errorf("one steward replaced the rotation two approved: the organization has not its key for epoch 2: %v", err)
	}
	if k, err := f.effectiveKey(t, s, st[0]); err != nil || k != key {
		t.Errorf("...nor has the steward who approved it: %v", err)
	}

	// The same whichever arrives first.
	s = f.state(t, append(f.base, lone...)...)
	mustApply(t, s, append([]*directory.Record{honest}, honestPages...)...)
	if k, err := f.effectiveKey(t, s, f.org); err != nil || k != key {
		t.Errorf("the lone rotation arrived first and stayed: %v", err)
	}
}

// The usual case: the honest steward's daemon rotates alone after the
// revocation, sealing to every remaining recipient, and its co-stewards'
// daemons approve it (it has a package for each of them and every
// member); the compromised steward's ground lone rotation gets no such
// approval. Once one co-steward has approved, the honest rotation holds
// epoch 2 whatever order the records arrive in. Before any approval the
// two lone rotations weigh the same and the lower ID wins: the guarantee
// rests on the co-stewards' approval, which is seconds away when they are
// online.
func TestApprovedLoneRotationKeepsUnrevokedRecipients(t *testing.T) {
	f := newEpochForkFixture(t)
	st := f.nw.Stewards
	key := directory.NewReadKey()
	honest, honestPages := f.nw.Rotation(t, 2, 1, f.rev.ProposalID(), key, f.all[:4], st[0])
	lone := f.groundLoneRotation(t, honest)
	approved := approval(t, honest, st[1])

	s := f.state(t, append(append(f.base, honest), honestPages...)...)
	if k, err := f.effectiveKey(t, s, f.org); err != nil || k != key {
		t.Fatalf("the automatic rotation did not take effect: %v", err)
	}
	mustApply(t, s, approved)
	mustApply(t, s, lone...)
	if k, err := f.effectiveKey(t, s, f.org); err != nil || k != key {
		t.Errorf("one steward cut an unrevoked organization out of the approved rotation: %v", err)
	}

	// The lone rival arrives first and takes epoch 2; the approval wins
	// it back.
	s = f.state(t, append(append(f.base, honest), honestPages...)...)
	mustApply(t, s, lone...)
	if _, err := f.effectiveKey(t, s, f.org); err == nil {
		t.Fatal("the ground rotation did not take epoch 2 before the approval: the test no longer shows what the approval does")
	}
	mustApply(t, s, approved)
	if k, err := f.effectiveKey(t, s, f.org); err != nil || k != key {
		t.Errorf("a co-steward's approval did not bring the organization back into epoch 2: %v", err)
	}
}
