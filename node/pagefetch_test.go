package node

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// pagedRotation is epoch 2 of nw, approved by the threshold, sealed to the
// stewards and to made-up recipients up to 250 (six pages, so that three stewards leave one out), and the
// index of a page that holds none of the stewards' packages: the page a
// test keeps from some nodes, which then still open the new key.
func pagedRotation(t *testing.T, nw *dirtest.Network) (epoch *directory.Record, pages []*directory.Record, withheld int) {
	t.Helper()
	var rs []directory.Recipient
	for _, s := range nw.Stewards {
		rs = append(rs, directory.Recipient{Key: s.Public(), KEM: s.KEMPublic()})
	}
	for len(rs) < 250 {
		id := dirtest.MustIdentity(t)
		rs = append(rs, directory.Recipient{Key: id.Public(), KEM: id.KEMPublic()})
	}
	epoch, pages = nw.Rotation(t, 2, 1, directory.Hash{}, directory.NewReadKey(), rs, nw.Stewards[:nw.Threshold]...)
	b, _ := epoch.DecodeBody()
	e := b.(*directory.Epoch)
	for i, pr := range pages {
		pb, err := pr.DecodeBody()
		if err != nil {
			t.Fatal(err)
		}
		pg := pb.(*directory.EpochPage)
		if !slices.ContainsFunc(nw.Stewards, func(s *directory.Identity) bool {
			_, ok := directory.FindPackage(nw.ID, e, []*directory.EpochPage{pg}, s.Public())
			return ok
		}) {
			return epoch, pages, i
		}
	}
	t.Fatalf("every one of the %d pages holds a steward's package", len(pages))
	return nil, nil, 0
}

// slowSync is a node of nw whose sync rounds are an hour apart: whatever
// it fetches within a test, it fetches for another reason.
func slowSync(t *testing.T, nw *dirtest.Network, id *directory.Identity, peers ...*Node) *Node {
	cfg := testConfig(t, nw, id, t.TempDir())
	cfg.SyncInterval = time.Hour
	for _, p := range peers {
		cfg.Bootstrap = append(cfg.Bootstrap, addr(p))
	}
	n := startNode(t, cfg)
	if _, err := n.acceptBatch([]*directory.Record{nw.Genesis, nw.FirstEpoch}, "", ViaLocal); err != nil {
		t.Fatal(err)
	}
	return n
}

func without(recs []*directory.Record, i int) []*directory.Record {
	return append(slices.Clone(recs[:i]), recs[i+1:]...)
}

// TestMissingPageFetchedAtOnce: a node that holds a rotation's epoch and
// its own key but not every page fetches the missing page from a peer as
// soon as one holds it, not at its next sync round (an hour here). Before,
// a node asked for pages only while its own package was missing, so a page
// gossip lost spread from a node that held its key only at sync rounds,
// one hop per round: the minute-long tail of issue 14 at 10,000
// recipients.
func TestMissingPageFetchedAtOnce(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	epoch, pages, p := pagedRotation(t, nw)
	a := slowSync(t, nw, nw.Stewards[0])
	b := slowSync(t, nw, nw.Stewards[1], a)
	waitFor(t, hangLimit, "the nodes to connect", func() bool {
		return len(b.Host().Network().ConnsToPeer(a.Host().ID())) > 0
	})
	// Both take the rotation without page p, which only a will get.
	for _, n := range []*Node{a, b} {
		if _, err := n.acceptBatch(append([]*directory.Record{epoch}, without(pages, p)...), "", ViaLocal); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, hangLimit, "b to open the epoch 2 key from the pages it holds", func() bool {
		_, ok := b.Keyring()[2]
		return ok
	})
	if rot, _ := b.State().CurrentRotation(); rot.Complete() {
		t.Fatalf("b's rotation is complete (%+v) before the withheld page exists anywhere", rot)
	}
	// Let b's first asks find nothing: a does not hold the page yet.
	time.Sleep(500 * time.Millisecond)
	if _, err := a.acceptBatch([]*directory.Record{pages[p]}, "", ViaLocal); err != nil {
		t.Fatal(err)
	}
	waitFor(t, time.Minute, "b to fetch the page a took after b's rotation stalled", func() bool {
		return b.State().Has(pages[p].Hash())
	})
	if rot, _ := b.State().CurrentRotation(); !rot.Complete() {
		t.Fatalf("b's rotation: %+v, want complete", rot)
	}
}

// TestPageTakenBySyncIsGossipedOn: on a line o – a – c, gossip lost one page
// of a rotation on its way to a and c. a fetches it from o and gossips it
// on, so c, which runs no sync at all here, gets it from the mesh; and what
// c gets is the sealing o stored, byte for byte (o served a the sealing it
// stored, a stored and gossiped it as it came), so a peer that already
// holds the page drops a's copy as a message seen, unopened.
func TestPageTakenBySyncIsGossipedOn(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	epoch, pages, p := pagedRotation(t, nw)
	o := slowSync(t, nw, nw.Stewards[0])
	a := slowSync(t, nw, nw.Stewards[1], o)
	cfg := testConfig(t, nw, nw.Stewards[2], t.TempDir())
	cfg.DisableSync = true
	cfg.Bootstrap = []string{addr(a)}
	c := startNode(t, cfg)
	if _, err := c.acceptBatch([]*directory.Record{nw.Genesis, nw.FirstEpoch}, "", ViaLocal); err != nil {
		t.Fatal(err)
	}
	waitFor(t, hangLimit, "a and c on each other's governance topic", func() bool {
		ag, cg := a.govTopic(), c.govTopic()
		return ag != nil && cg != nil && slices.Contains(ag.ListPeers(), c.Host().ID()) && slices.Contains(cg.ListPeers(), a.Host().ID())
	})
	if _, err := o.acceptBatch(append([]*directory.Record{epoch}, pages...), "", ViaLocal); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*Node{c, a} { // a last: its fetching starts now
		if _, err := n.acceptBatch(append([]*directory.Record{epoch}, without(pages, p)...), "", ViaLocal); err != nil {
			t.Fatal(err)
		}
	}
	h := pages[p].Hash()
	waitFor(t, time.Minute, "c to get by gossip the page a fetched from o", func() bool { return c.State().Has(h) })
	ctx := context.Background()
	want, err := o.store.ds.Get(ctx, recordKey(h))
	if err != nil {
		t.Fatal(err)
	}
	for name, n := range map[string]*Node{"a": a, "c": c} {
		var got []byte
		// c took it by gossip: written behind (writebehind.go).
		waitFor(t, 10*time.Second, name+" to write the page", func() bool {
			got, err = n.store.ds.Get(ctx, recordKey(h))
			return err == nil
		})
		if !bytes.Equal(got, want) {
			t.Errorf("%s stored another sealing of the page than o's (%d and %d bytes): a re-gossip of it is a new message to every peer", name, len(got), len(want))
		}
	}
}
