package node

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// withKEMOf is id's signing key paired with other's encapsulation key: what
// the holder of a seized reader key makes to have the key sign a second KEM
// key (its KEMBinding then signs other's KEM key with id's key).
func withKEMOf(t *testing.T, id, other *directory.Identity) *directory.Identity {
	t.Helper()
	fields := func(x *directory.Identity) map[int]cbor.RawMessage {
		sealed, err := (&directory.Keystore{Identity: x}).Encrypt("contraseña", 1)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := directory.DecryptWithPassphrase(sealed, "contraseña")
		if err != nil {
			t.Fatal(err)
		}
		var m map[int]cbor.RawMessage
		if err := cbor.Unmarshal(plain, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	f := fields(id)
	f[3] = fields(other)[3] // the KEM secret
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	plain, err := em.Marshal(f)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := directory.EncryptWithPassphrase(plain, "contraseña", 1)
	if err != nil {
		t.Fatal(err)
	}
	ks, err := directory.DecryptKeystore(sealed, "contraseña")
	if err != nil {
		t.Fatal(err)
	}
	return ks.Identity
}

// A reader key signs a second KEM key, which a second organization vouches
// for while the first vouches for the original. Both nodes that see the
// two grants publish evidence; the second organization is revoked (its
// grant leaves every pool) and the stewards rotate. The steward's node,
// restarted, and a node that was offline throughout and comes back with
// only epoch 1's key, both report the reader key's equivocation from the
// evidence alone and seal it no package. Before, only entry conflicts
// made evidence, and the conflict left with the revoked voucher's grant.
func TestKEMEquivocationEvidenceSurvivesRevocationRestartAndRotation(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org1, org2, victim, late := dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	seized := withKEMOf(t, victim, dirtest.MustIdentity(t))
	if seized.Public() != victim.Public() || string(seized.KEMPublic()) == string(victim.KEMPublic()) {
		t.Fatal("the test identity does not pair the victim's key with another KEM key")
	}
	cfgS := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	s := startNode(t, cfgS)
	cfgW := testConfig(t, nw, org1, t.TempDir())
	cfgW.Bootstrap = []string{addr(s)}
	w := startNode(t, cfgW)
	topicUp(t, 1, s, w)
	ref := &reference{t: t, nw: nw}
	ref.publish(s, nw.Genesis, nw.FirstEpoch, nw.Admit(t, org1, "Colectivo Uno"), nw.Admit(t, org2, "Colectivo Dos"), nw.Admit(t, late, "Tardía"))
	waitFor(t, 15*time.Second, "both nodes to agree", func() bool { return sameDigest([]*Node{s, w}, ref.digest()) })

	g1 := nw.Vouch(t, org1, victim)
	g2 := nw.Vouch(t, org2, seized)
	done := make(chan error, 2)
	go func() { _, err := w.Publish(t.Context(), g1); done <- err }()
	go func() { _, err := s.Publish(t.Context(), g2); done <- err }()
	for range 2 {
		if err := <-done; err != nil && !errors.Is(err, directory.ErrDuplicate) {
			t.Fatalf("publishing a grant: %v", err)
		}
	}
	slot := "kem/" + victim.Public().Hex()
	reports := func(n *Node) bool {
		return slices.ContainsFunc(n.State().Equivocations(), func(e directory.Equivocation) bool {
			return e.Slot == slot && slices.Contains(e.Hashes, g1.Hash()) && slices.Contains(e.Hashes, g2.Hash())
		})
	}
	sealsTo := func(n *Node) bool {
		return slices.ContainsFunc(n.State().Recipients(), func(r directory.Recipient) bool { return r.Key == victim.Public() })
	}
	waitFor(t, 15*time.Second, "both nodes to report and hold evidence", func() bool {
		return reports(s) && reports(w) && holdsEvidence(s) && holdsEvidence(w)
	})

	// The second organization is revoked: its grant leaves every pool.
	mustPublish(t, s, nw.RevokeBy(t, org2.Public()))
	waitFor(t, 15*time.Second, "the second grant gone from both nodes", func() bool {
		return !s.State().Has(g2.Hash()) && !w.State().Has(g2.Hash())
	})
	s = rotateAndRestart(t, nw, s, w, cfgS)
	if !reports(s) || sealsTo(s) {
		t.Fatalf("after a restart the steward's node reports %+v, seals to the key: %v", s.State().Equivocations(), sealsTo(s))
	}

	cfgL := testConfig(t, nw, late, t.TempDir())
	cfgL.Bootstrap = []string{addr(s)}
	l := startNode(t, cfgL)
	waitFor(t, 20*time.Second, "the late node to take epoch 2 and report the equivocation", func() bool {
		return l.Status().KeyEpoch == 2 && reports(l)
	})
	if sealsTo(l) || l.State().Has(g2.Hash()) {
		t.Fatalf("the late node seals to the key: %v; holds the revoked voucher's grant: %v", sealsTo(l), l.State().Has(g2.Hash()))
	}
}
