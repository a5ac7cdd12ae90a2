package dhtstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	pebbleds "github.com/ipfs/go-ds-pebble"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestLateNodeFetchesDirectory: five nodes hold a 100-entry directory in the
// DHT. A node that joins later with only an invite (network ID, epoch-1 read
// key, the stewards' keys) and one bootstrap address rebuilds the same state
// from the DHT alone: no gossip, no sync, nothing handed over in the test.
func TestLateNodeFetchesDirectory(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	orgA, orgB := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	admitA, admitB := nw.Admit(t, orgA, "Colectivo Uno"), nw.Admit(t, orgB, "Colectivo Dos")
	recs := []*directory.Record{nw.Genesis, admitA, admitB}
	var slotsA, slotsB []directory.SlotID
	for i := range 100 {
		org, slots := orgA, &slotsA
		if i%2 == 1 {
			org, slots = orgB, &slotsB
		}
		e := nw.Entry(t, org, fmt.Sprintf("servicio-%03d", i), 1)
		recs = append(recs, e)
		*slots = append(*slots, slotID(t, e))
	}
	published := nw.State()
	for _, r := range recs {
		if _, err := published.Apply(r); err != nil {
			t.Fatal(err)
		}
	}

	nodes := newCluster(t, nw, 5, nil)
	ctx := ctxFor(t, 90*time.Second)
	start := time.Now()
	putAll(t, ctx, nodes, recs)
	governance := []directory.SlotID{slotID(t, nw.Genesis), slotID(t, admitA), slotID(t, admitB)}
	if err := nodes[0].s.PublishManifest(ctx, nw.Stewards[0], governance); err != nil {
		t.Fatal(err)
	}
	if err := nodes[1].s.PublishManifest(ctx, orgA, slotsA); err != nil {
		t.Fatal(err)
	}
	if err := nodes[2].s.PublishManifest(ctx, orgB, slotsB); err != nil {
		t.Fatal(err)
	}
	t.Logf("published %d records and 3 manifests in %s", len(recs), time.Since(start))

	store, err := pebbleds.NewDatastore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() }) // registered first, so it runs after the node is gone
	kr := newKeyring(1, nw.Key)
	o := testOptions(nw, kr)
	o.Bootstrap = []peer.AddrInfo{nodes[4].info()}
	late := newNode(t, store, o)
	waitFor(t, 20*time.Second, "the late node's routing table", func() bool { return late.s.RoutingTableSize() >= 5 })

	var stewards []directory.PublicKey
	for _, s := range nw.Stewards {
		stewards = append(stewards, s.Public())
	}
	st := nw.State()
	start = time.Now()
	applied, err := late.s.FetchAll(ctx, st, stewards)
	if err != nil {
		t.Fatalf("fetch all: %v (applied %d)", err, applied)
	}
	t.Logf("late node applied %d records in %s", applied, time.Since(start))
	if applied != len(recs) {
		t.Errorf("applied %d records, want %d", applied, len(recs))
	}
	if got, want := st.Digest(), published.Digest(); got != want {
		t.Fatalf("late node digest %s, publishers' %s", got.Short(), want.Short())
	}
	if n := len(st.Members()); n != 2 {
		t.Fatalf("late node sees %d members, want 2", n)
	}
}

// TestManifestPaging: a manifest longer than one page is split, and reading
// it back yields every slot.
func TestManifestPaging(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	nodes := newCluster(t, nw, 2, nil)
	ctx := ctxFor(t, 30*time.Second)
	slots := make([]directory.SlotID, directory.ManifestPageSize+17)
	for i := range slots {
		slots[i] = directory.SlotIDOf(fmt.Sprintf("entry/x/%d", i))
	}
	if err := nodes[0].s.PublishManifest(ctx, org, slots); err != nil {
		t.Fatal(err)
	}
	// A second publication replaces the first even within the same second.
	if err := nodes[0].s.PublishManifest(ctx, org, slots[:3]); err != nil {
		t.Fatal(err)
	}
	got, err := nodes[1].s.manifestSlots(ctx, org.Public())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("read %d slots after republishing 3", len(got))
	}
	if err := nodes[0].s.PublishManifest(ctx, org, slots); err != nil {
		t.Fatal(err)
	}
	got, err = nodes[1].s.manifestSlots(ctx, org.Public())
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(slots) {
		t.Fatalf("read %d slots, published %d", len(got), len(slots))
	}
	for i := range got {
		if got[i] != slots[i] {
			t.Fatalf("slot %d differs", i)
		}
	}
}
