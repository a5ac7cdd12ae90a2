package directory_test

import (
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// Revocations by stewards citing the current charter are derived on their
// own, not with the whole pool again, even while someone's revocation
// citing a version no charter links waits in the pool: any key may sign
// one (it waits for that charter), and counted as the highest version
// derived it would make every later derivation whole. Whether each
// derivation is right is checked for every test of the package
// (TestMain); this checks that the shortcut is taken, after a derivation
// of the whole pool as after one of only what changed.
func TestRevocationsAreDerivedOnTheirOwn(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	st := nw.State()
	org := dirtest.MustIdentity(t)
	mustApply(t, st, nw.Genesis)
	mustApply(t, st, nw.Admit(t, org, "Colectivo Ejemplo"))
	stranger := dirtest.MustIdentity(t)
	mustApply(t, st, nw.Sign(t, &directory.Revocation{Key: org.Public(), Charter: 9, Issued: nw.Now.Unix()}, stranger))
	if st.IsRevoked(org.Public()) {
		t.Fatal("a stranger's revocation citing a charter nobody links revoked the organization")
	}
	// A charter proposal (one steward's amendment, short of the threshold)
	// derives everything again while that revocation waits.
	v2, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, 2, directory.Policy{}, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, st, nw.Sign(t, v2, nw.Stewards[0]))
	before := directory.WholeRevocationDerivationsForTest(st)
	const n = 20
	for range n {
		reader := dirtest.MustIdentity(t)
		mustApply(t, st, nw.Vouch(t, org, reader))
		mustApply(t, st, nw.RevokeBy(t, reader.Public()))
		if !st.IsRevoked(reader.Public()) {
			t.Fatal("a reader's revocation by stewards did not take effect")
		}
	}
	if got := directory.WholeRevocationDerivationsForTest(st) - before; got > 0 {
		t.Fatalf("%d of %d revocations by stewards derived the whole pool again", got, n)
	}
}
