package node

import (
	"crypto/hpke"
	"encoding/binary"
	"slices"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// Issue 20, finding 2, at the node: the stewards approve an epoch whose
// package for the organization holds another key than the epoch commits to
// (co-approvers cannot open each other's packages). The organization's
// node refuses the key and says so, in its status and health, so that
// stewards hear of the equivocation. The package is built here from
// PROTOCOL.md §4, as a second implementation would.
func TestKeyMismatchIsShownByTheRecipient(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	n := startNode(t, testConfig(t, nw, org, t.TempDir()))

	committed, other := directory.NewReadKey(), directory.NewReadKey()
	rs := []directory.Recipient{{Key: nw.Stewards[0].Public(), KEM: nw.Stewards[0].KEMPublic()}, {Key: org.Public(), KEM: org.KEMPublic()}}
	e, pages, err := directory.NewEpoch(nw.ID, 1, 1, directory.Hash{}, committed, rs, nw.Now, directory.DefaultMaxRecordBytes)
	if err != nil {
		t.Fatal(err)
	}
	info := append([]byte("ceiba epoch key v2\x00"), nw.ID[:]...)
	info = binary.BigEndian.AppendUint64(info, e.Number)
	info = append(info, e.Rotation[:]...)
	pub := org.Public()
	info = append(info, pub[:]...)
	pk, err := hpke.MLKEM768X25519().NewPublicKey(org.KEMPublic())
	if err != nil {
		t.Fatal(err)
	}
	tag := directory.PackageTag(nw.ID, e.Number, e.Rotation, org.Public())
	var pageRecs []*directory.Record
	for i, pg := range pages {
		for j := range pg.Packages {
			if pg.Packages[j].Tag == tag {
				if pg.Packages[j].Sealed, err = hpke.Seal(pk, hpke.HKDFSHA256(), hpke.ChaCha20Poly1305(), info, other[:]); err != nil {
					t.Fatal(err)
				}
			}
		}
		// The signers list the page as it is now: the epoch is
		// consistent, only the key inside one package differs.
		pr := nw.Sign(t, pg, nw.Stewards[0])
		e.PageHashes[i] = directory.PageHash(pr.Body)
		pageRecs = append(pageRecs, pr)
	}
	mustPublish(t, n, nw.Genesis, nw.Sign(t, e, nw.Stewards[0], nw.Stewards[1]), nw.Admit(t, org, "Colectivo Ejemplo"))
	mustPublish(t, n, pageRecs...)
	waitFor(t, 10*time.Second, "the organization's node to report the mismatch", func() bool {
		return slices.Equal(n.Status().KeyMismatches, []uint64{1})
	})
	if k, ok := n.Keyring()[1]; ok && k == other {
		t.Fatal("the node adopted the key its package held instead of refusing it")
	}
}
