package directory_test

import (
	"errors"
	"slices"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// When the two sides of a charter fork list different stewards, what a
// steward of only one side signs citing that version (a heartbeat, an
// approval) is taken in every order, whichever side a node linked first.
// Before, it was refused as not a steward, for good, when it arrived while
// only the other side was linked, and a proposal it alone signed that was
// waiting for version 2 was dropped when the other side linked: which
// heartbeats and admissions a node held depended on the order (SECURITY.md
// open issue 4).
func TestForkSideStewardsCountInAnyOrder(t *testing.T) {
	f := dirtest.NewFork(t)
	nw, d, e, org, withD, withE, byD := f.Network, f.D, f.E, f.Org, f.WithD, f.WithE, f.ByD
	byA := approval(t, byD, nw.Stewards[0])
	beatD, beatE := nw.Beat(t, 2, d), nw.Beat(t, 2, e)

	s := inAllOrders(t, nw, nw.Genesis, withE, withD, byD, byA, beatD)
	if s.CharterID() != withD.ProposalID() {
		t.Fatalf("chain at %s, want the side three stewards signed", s.CharterID().Short())
	}
	if _, ok := s.Member(org.Public()); !ok {
		t.Fatal("the organization that a steward of the winning side and a steward of both admitted is not a member")
	}
	if !s.Has(beatD.Hash()) || !s.Has(byD.Hash()) {
		t.Fatal("the winning side's own steward's heartbeat or approval is not held")
	}
	if eq := s.Equivocations(); len(eq) != 1 || eq[0].Slot != "charter/2" {
		t.Fatalf("equivocations %+v, want the charter fork", eq)
	}
	// The losing side's own steward: its heartbeat is held in any order
	// too, and does not count for freshness.
	s = inAllOrders(t, nw, nw.Genesis, withD, withE, beatE)
	hbs := s.Heartbeats()
	if len(hbs) != 1 || hbs[0].Steward != e.Public() || hbs[0].Current {
		t.Fatalf("heartbeats %+v, want the losing side's steward's, not current", hbs)
	}

	// A signer of neither side citing version 2 may yet be named by a
	// third side: refused for a reason that may pass, and nothing of it is
	// kept, so junk signed that way cannot fill the pool. Citing version 1,
	// the genesis, the refusal is final.
	outsider := dirtest.MustIdentity(t)
	before, records := s.Digest(), s.Stats().Records
	for _, r := range []*directory.Record{
		nw.Beat(t, 2, outsider),
		nw.AdmitAt(t, 2, outsider, "Nadie", outsider),
	} {
		_, err := s.Apply(r)
		if !errors.Is(err, directory.ErrPendingSignature) || !directory.MayPass(err) {
			t.Fatalf("%s by a steward of no side of version 2: %v, want a refusal that may pass", r.Type, err)
		}
	}
	if _, err := s.Apply(nw.Beat(t, 1, outsider)); !errors.Is(err, directory.ErrNotSteward) {
		t.Fatalf("heartbeat at the genesis by a non-steward: %v, want %v", err, directory.ErrNotSteward)
	}
	if s.Digest() != before || s.Stats().Records != records {
		t.Fatal("refused records changed the state")
	}
}

// A proposal that waited for version 2, signed only by a steward of the
// side not linked yet, leaves the pool when the other side links, and is
// listed for the caller to offer again: offered once its side is linked,
// it is taken.
func TestWaitingProposalOfOtherSideIsSetAside(t *testing.T) {
	f := dirtest.NewFork(t)
	nw, org, withD, withE, byD := f.Network, f.Org, f.WithD, f.WithE, f.ByD
	s := nw.State()
	for _, r := range []*directory.Record{nw.Genesis, byD} {
		if _, err := s.Apply(r); err != nil {
			t.Fatal(err)
		}
	}
	a, err := s.Apply(withE)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(a.Dropped, byD.Hash()) || len(a.SetAside) != 1 || a.SetAside[0].Hash() != byD.Hash() || s.Has(byD.Hash()) {
		t.Fatalf("linking the other side: dropped %d, set aside %d, still held %v; want the waiting proposal dropped and set aside",
			len(a.Dropped), len(a.SetAside), s.Has(byD.Hash()))
	}
	if _, err := s.Apply(byD); !directory.MayPass(err) {
		t.Fatalf("offered again before its side links: %v, want a refusal that may pass", err)
	}
	if _, err := s.Apply(withD); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(byD); err != nil {
		t.Fatalf("offered again once its side is linked: %v", err)
	}
	if _, err := s.Apply(approval(t, byD, nw.Stewards[0])); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Member(org.Public()); !ok {
		t.Fatal("the organization is not a member")
	}
}
