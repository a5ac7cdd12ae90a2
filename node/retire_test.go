package node

import (
	"slices"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A node keeps only the current rotation's pages in memory: the pages of
// epochs 1 and 2 leave it once epoch 3 takes effect, and again after a
// restart. It still serves them: an organization whose node holds only
// epoch 1's key (as an invite gives it) and syncs from this node alone
// takes epoch 2's pages, opens its key, then epoch 3's, and reaches the
// same directory.
func TestPastRotationsLeaveMemoryAndAreStillServed(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	late := dirtest.MustIdentity(t)
	rs := nw.Recipients(t, 150, late) // several pages per rotation
	key2, key3 := directory.NewReadKey(), directory.NewReadKey()
	e2, pages2 := nw.Rotation(t, 2, 1, directory.Hash{}, key2, rs, nw.Stewards[:2]...)
	e3, pages3 := nw.Rotation(t, 3, 1, directory.Hash{}, key3, rs, nw.Stewards[:2]...)
	if len(pages2) < 2 {
		t.Fatalf("%d pages per rotation; the test needs several", len(pages2))
	}

	cfgS := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	s := startNode(t, cfgS)
	ref := &reference{t: t, nw: nw}
	ref.publish(s, slices.Concat([]*directory.Record{nw.Genesis, nw.Admit(t, late, "Colectivo Tardío"), nw.FirstEpoch}, nw.FirstPages)...)
	ref.publish(s, append([]*directory.Record{e2}, pages2...)...)
	ref.publish(s, append([]*directory.Record{e3}, pages3...)...)
	want := ref.digest()

	retired := func(n *Node) bool {
		return n.State().CurrentEpoch() == 3 && n.State().RetiredPages() == len(nw.FirstPages)+len(pages2) &&
			len(n.State().PageRecords(2, e2Rotation(t, e2), 1000)) == len(pages2)
	}
	waitFor(t, 15*time.Second, "the pages of epochs 1 and 2 to leave memory", func() bool { return retired(s) })
	if s.State().Digest() != want {
		t.Fatal("the steward's node shows another directory after its pages left memory")
	}
	s.Close()
	s = startNode(t, cfgS)
	if !retired(s) {
		t.Fatal("after a restart the pages of past rotations stay in memory")
	}

	cfgL := testConfig(t, nw, late, t.TempDir())
	cfgL.Bootstrap = []string{addr(s)}
	l := startNode(t, cfgL)
	waitFor(t, 30*time.Second, "the late organization to open epochs 2 and 3 and hold the directory", func() bool {
		return l.Status().KeyEpoch == 3 && l.State().Digest() == want
	})
	if l.Keyring()[2] != key2 || l.Keyring()[3] != key3 {
		t.Fatal("the late organization holds other keys than the rotations sealed")
	}
}

func e2Rotation(t *testing.T, r *directory.Record) [16]byte {
	t.Helper()
	b, err := r.DecodeBody()
	if err != nil {
		t.Fatal(err)
	}
	return b.(*directory.Epoch).Rotation
}
