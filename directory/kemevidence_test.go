package directory_test

import (
	"slices"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A reader key whose grants name two KEM keys (each signed by the reader's
// key) equivocated; evidence carrying both grants shows it on a node that
// holds only one of them, after a restart, and after the voucher of one
// grant is revoked (its grant leaves the pool): the key gets no package
// in any of them. Before, only entry conflicts made evidence, and a
// node holding one grant sealed the key's package to that grant's KEM key.
func TestKEMEquivocationEvidence(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org1, org2, victim, reporter := dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	other, err := directory.NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	admit1, admit2 := nw.Admit(t, org1, "Colectivo Uno"), nw.Admit(t, org2, "Colectivo Dos")
	g1 := nw.Vouch(t, org1, victim)
	second := directory.Reader{Key: victim.Public(), KEM: other.KEMPublic(), Issued: nw.Now.Unix() + 1}
	second.KEMSig = signBindingAs(t, victim, other.KEMPublic())
	g2 := nw.Sign(t, &second, org2)
	ev, err := directory.NewEvidence(g2, g1, reporter)
	if err != nil {
		t.Fatalf("evidence of two grants naming two KEM keys: %v", err)
	}
	slot := "kem/" + victim.Public().Hex()
	shows := func(s *directory.State) bool {
		eqs := s.Equivocations()
		return len(eqs) == 1 && eqs[0].Slot == slot && eqs[0].Key == victim.Public() &&
			slices.Contains(eqs[0].Hashes, g1.Hash()) && slices.Contains(eqs[0].Hashes, g2.Hash())
	}
	sealsTo := func(s *directory.State) bool {
		return slices.ContainsFunc(s.Recipients(), func(r directory.Recipient) bool { return r.Key == victim.Public() })
	}

	// A node that only ever got the first grant, and the evidence.
	late := nw.State()
	for _, r := range []*directory.Record{nw.Genesis, admit1, admit2, g1, ev} {
		mustApply(t, late, decoded(t, r))
	}
	if !shows(late) || sealsTo(late) {
		t.Fatalf("one grant and the evidence: equivocations %+v, package for the key %v", late.Equivocations(), sealsTo(late))
	}
	restarted := nw.State()
	for _, r := range late.Records() {
		mustApply(t, restarted, decoded(t, r))
	}
	if !shows(restarted) || sealsTo(restarted) {
		t.Fatalf("after a restart: equivocations %+v, package for the key %v", restarted.Equivocations(), sealsTo(restarted))
	}

	// The second voucher is revoked: its grant leaves the pool, the
	// evidence still shows the conflict.
	// (In causal order and reversed: the property test covers the rest.)
	causal := []*directory.Record{nw.Genesis, admit1, admit2, g1, g2, ev, nw.RevokeBy(t, org2.Public())}
	reversed := slices.Clone(causal)
	slices.Reverse(reversed)
	for _, order := range [][]*directory.Record{causal, reversed} {
		s := nw.State()
		if err := applyAll(s, order); err != nil {
			t.Fatal(err)
		}
		if !shows(s) || sealsTo(s) {
			t.Fatalf("second voucher revoked: equivocations %+v, package for the key %v", s.Equivocations(), sealsTo(s))
		}
	}

	// Two grants naming one KEM key, or for two readers, are no conflict.
	if _, err := directory.NewEvidence(g1, nw.Vouch(t, org2, victim), reporter); err == nil {
		t.Fatal("evidence built from two grants naming the same KEM key")
	}
	if _, err := directory.NewEvidence(g1, nw.Vouch(t, org1, reporter), reporter); err == nil {
		t.Fatal("evidence built from grants for two reader keys")
	}
}
