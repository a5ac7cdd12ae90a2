package directory_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// showsFork says whether s reports the fork at slot between the proposals
// of a and b.
func showsFork(s *directory.State, slot string, a, b *directory.Record) bool {
	for _, eq := range s.Equivocations() {
		if eq.Slot == slot {
			return eq.Key == (directory.PublicKey{}) && slices.Contains(eq.Hashes, a.ProposalID()) && slices.Contains(eq.Hashes, b.ProposalID())
		}
	}
	return false
}

// Evidence of a charter fork carries both amendments with the signatures
// that gave each the threshold of version 1's stewards. A node that only
// ever got one side, and the evidence, reports the fork, after a restart
// too, in every order; evidence arriving before the charter it cites waits.
// Before, two charters were no evidence at all: a node reported a fork only
// while it held both sides.
func TestCharterForkEvidence(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	st := nw.Stewards
	v2 := sameStewardsV2(t, nw)
	honest := nw.Sign(t, v2, st[0], st[1])
	fork := forkOf(t, nw, honest.ProposalID(), true)
	reporter := dirtest.MustIdentity(t)
	ev, err := directory.NewEvidence(fork, honest, reporter)
	if err != nil {
		t.Fatalf("evidence of two amendments of version 1: %v", err)
	}

	late := inAllOrders(t, nw, nw.Genesis, honest, ev)
	if !showsFork(late, "charter/2", honest, fork) {
		t.Fatalf("one side and the evidence: equivocations %+v, want the fork at charter/2", late.Equivocations())
	}
	restarted := nw.State()
	for _, r := range late.Records() {
		mustApply(t, restarted, decoded(t, r))
	}
	if !showsFork(restarted, "charter/2", honest, fork) {
		t.Fatalf("after a restart: equivocations %+v", restarted.Equivocations())
	}
	// With both sides the fork is reported once, evidence or not.
	both := inAllOrders(t, nw, nw.Genesis, honest, fork, ev)
	if eqs := both.Equivocations(); len(eqs) != 1 || !showsFork(both, "charter/2", honest, fork) {
		t.Fatalf("both sides and the evidence: equivocations %+v, want one fork", eqs)
	}

	// Evidence that comes before the charter it cites waits for it.
	early := nw.State()
	if _, err := early.Apply(decoded(t, ev)); !errors.Is(err, directory.ErrUnknownCharter) || !directory.MayPass(err) {
		t.Fatalf("evidence before the genesis: %v, want a passing ErrUnknownCharter", err)
	}
}

// One real amendment and one made up (signed by a steward and an outsider,
// or by outsiders only) is no fork: the evidence is refused with a reason
// naming the side, and the node reports nothing. Two records of one body
// are no fork either.
func TestForgedForkEvidenceIsRefused(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	st := nw.Stewards
	v2 := sameStewardsV2(t, nw)
	honest := nw.Sign(t, v2, st[0], st[1])
	outsider, other := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	made, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), []directory.Steward{{Key: outsider.Public(), KEM: outsider.KEMPublic(), KEMSig: outsider.KEMBinding()}}, 1, directory.Policy{}, nw.Now.Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, signers := range [][]*directory.Identity{{st[2], outsider}, {outsider, other}} {
		forged := nw.Sign(t, made, signers...)
		ev, err := directory.NewEvidence(honest, forged, dirtest.MustIdentity(t))
		if err != nil {
			t.Fatalf("building the record: %v", err)
		}
		s := nw.State()
		mustApply(t, s, nw.Genesis, honest)
		before := s.Digest()
		_, err = s.Apply(decoded(t, ev))
		if !errors.Is(err, directory.ErrNotSteward) {
			t.Fatalf("forged side signed by %d stewards: %v, want ErrNotSteward", len(signers)-1, err)
		}
		if eqs := s.Equivocations(); len(eqs) != 0 || s.Digest() != before || len(s.Records()) != 2 {
			t.Fatalf("refused evidence changed the state: equivocations %+v", eqs)
		}
	}
	if _, err := directory.NewEvidence(honest, nw.Sign(t, v2, st[0], st[2]), dirtest.MustIdentity(t)); err == nil {
		t.Fatal("evidence built from two records of one amendment")
	}
}

// Two epochs of one number, each signed by threshold stewards: evidence of
// the fork shows on a node that holds only the first epoch. A node that
// sees both sides builds the evidence itself (State.ForkEvidence) from the
// proposal record and its approval, for a charter fork too, and it is the
// evidence another node takes.
func TestEpochForkEvidenceAndForkEvidenceFromApprovals(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	st := nw.Stewards
	second, _ := nw.Rotation(t, 1, 1, directory.Hash{}, directory.NewReadKey(),
		[]directory.Recipient{{Key: st[0].Public(), KEM: st[0].KEMPublic()}}, st[1], st[2])
	ev, err := directory.NewEvidence(nw.FirstEpoch, second, dirtest.MustIdentity(t))
	if err != nil {
		t.Fatalf("evidence of two epochs numbered 1: %v", err)
	}
	late := inAllOrders(t, nw, nw.Genesis, nw.FirstEpoch, ev)
	if !showsFork(late, "epoch/1", nw.FirstEpoch, second) {
		t.Fatalf("one epoch and the evidence: equivocations %+v, want the fork at epoch/1", late.Equivocations())
	}

	// A node holding both epochs and a charter fork whose signatures are
	// spread over a proposal and an approval builds both pieces.
	honest := nw.Sign(t, sameStewardsV2(t, nw), st[0])
	honestApproval := approval(t, honest, st[1])
	fork := forkOf(t, nw, honest.ProposalID(), true)
	seen := nw.State()
	mustApply(t, seen, nw.Genesis, nw.FirstEpoch, second, honest, honestApproval, fork)
	built := seen.ForkEvidence(dirtest.MustIdentity(t))
	if len(built) != 2 {
		t.Fatalf("ForkEvidence built %d pieces, want the charter and the epoch fork", len(built))
	}
	other := nw.State()
	mustApply(t, other, nw.Genesis, nw.FirstEpoch, honest)
	for _, r := range built {
		mustApply(t, other, decoded(t, r))
	}
	if !showsFork(other, "charter/2", honest, fork) || !showsFork(other, "epoch/1", nw.FirstEpoch, second) {
		t.Fatalf("built evidence on a node with one side of each: equivocations %+v", other.Equivocations())
	}
	mustApply(t, seen, built...)
	if again := seen.ForkEvidence(dirtest.MustIdentity(t)); len(again) != 0 {
		t.Fatalf("a node holding the evidence builds %d more pieces", len(again))
	}
}

// sameStewardsV2 is version 2 of nw's charter with the same stewards.
func sameStewardsV2(t *testing.T, nw *dirtest.Network) *directory.Charter {
	t.Helper()
	v2, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, 2, directory.Policy{}, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	return v2
}
