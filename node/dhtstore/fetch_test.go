package dhtstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	var slotsA, slotsB []directory.SlotHead
	for i := range 100 {
		org, slots := orgA, &slotsA
		if i%2 == 1 {
			org, slots = orgB, &slotsB
		}
		e := nw.Entry(t, org, fmt.Sprintf("servicio-%03d", i), 1)
		recs = append(recs, e)
		*slots = append(*slots, listed(t, e))
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
	governance := []directory.SlotHead{listed(t, nw.Genesis), listed(t, admitA), listed(t, admitB)}
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

// TestManifestPaging: a manifest longer than one page is split into pages
// that DHT servers other than its signer's own store at the charter's
// default max_record_bytes (a page of 4,000 slots, as pages were before,
// encodes to 68 KB and no server but the signer's took it), reading it
// back yields every slot with its head, and a change of one slot's head
// re-puts only the page that lists it.
func TestManifestPaging(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	nodes := newCluster(t, nw, 3, func(_ int, o *Options) { o.Authority = everyoneUpTo(directory.DefaultMaxRecordBytes) })
	ctx := ctxFor(t, 60*time.Second)
	per := directory.ManifestSlotsPerPage(directory.DefaultMaxRecordBytes)
	slots := make([]directory.SlotHead, 2*per+17)
	for i := range slots {
		slots[i].Slot = directory.SlotIDOf(fmt.Sprintf("entry/x/%d", i))
		slots[i].Head[0] = byte(i)
	}
	if err := nodes[0].s.PublishManifest(ctx, org, slots); err != nil {
		t.Fatal(err)
	}
	// A second publication replaces the first even within the same second.
	if err := nodes[0].s.PublishManifest(ctx, org, slots[:3]); err != nil {
		t.Fatal(err)
	}
	read := func(from *testNode) []directory.SlotHead {
		t.Helper()
		pages, err := from.s.manifestSlots(ctx, org.Public())
		if err != nil {
			t.Fatal(err)
		}
		var out []directory.SlotHead
		for _, m := range pages {
			if len(m.Heads) != len(m.Slots) {
				t.Fatalf("page %d lists %d slots and %d heads", m.Page, len(m.Slots), len(m.Heads))
			}
			for j := range m.Slots {
				out = append(out, directory.SlotHead{Slot: m.Slots[j], Head: m.Heads[j]})
			}
		}
		return out
	}
	if got := read(nodes[1]); len(got) != 3 {
		t.Fatalf("read %d slots after republishing 3", len(got))
	}
	if err := nodes[0].s.PublishManifest(ctx, org, slots); err != nil {
		t.Fatal(err)
	}
	before := slices.Clone(nodes[0].s.manifests[org.Public()])
	if len(before) != 3 {
		t.Fatalf("%d slots in %d pages, want 3", len(slots), len(before))
	}
	for i, r := range before {
		if n := len(r.Encode()); n > directory.DefaultMaxRecordBytes {
			t.Fatalf("page %d encodes to %d bytes, over the default max_record_bytes", i, n)
		}
	}
	slots[per+5].Head[1] = 0xff // a new version of a slot on the second page
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if err := nodes[0].s.PublishManifest(gone, org, slots); err == nil {
		t.Fatal("a manifest published with an ended context reports no error")
	}
	// The same list again: the page that was not put is put now.
	if err := nodes[0].s.PublishManifest(ctx, org, slots); err != nil {
		t.Fatal(err)
	}
	after := nodes[0].s.manifests[org.Public()]
	for i := range after {
		if same := after[i].Hash() == before[i].Hash(); same != (i != 1) {
			t.Fatalf("page %d re-put: %v; only page 1 lists the changed slot", i, !same)
		}
	}
	// The signer goes away: the other servers hold every page.
	nodes[0].s.Close()
	nodes[0].h.Close()
	got := read(nodes[2])
	if !slices.Equal(got, slots) {
		t.Fatalf("read %d slots from the other servers, published %d (or different heads)", len(got), len(slots))
	}
}

// TestFetchReadsOnlySlotsItLacks: a node that holds the directory and
// walks the DHT again reads no slot whose listed head it holds; a new
// version of one entry is one read; a page without heads (as every page
// was before heads) has all its slots read.
func TestFetchReadsOnlySlotsItLacks(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	recs := []*directory.Record{nw.Genesis, nw.Admit(t, org, "Colectivo Uno")}
	for i := range 40 {
		recs = append(recs, nw.Entry(t, org, fmt.Sprintf("servicio-%03d", i), 1))
	}
	nodes := newCluster(t, nw, 4, nil)
	ctx := ctxFor(t, 90*time.Second)
	putAll(t, ctx, nodes, recs)
	manifest := func(rs []*directory.Record) {
		t.Helper()
		var slots []directory.SlotHead
		for _, r := range rs {
			slots = append(slots, listed(t, r))
		}
		if err := nodes[1].s.PublishManifest(ctx, org, slots); err != nil {
			t.Fatal(err)
		}
	}
	if err := nodes[0].s.PublishManifest(ctx, nw.Stewards[0], []directory.SlotHead{listed(t, recs[0]), listed(t, recs[1])}); err != nil {
		t.Fatal(err)
	}
	manifest(recs[2:])

	st := nw.State()
	signers := []directory.PublicKey{nw.Stewards[0].Public(), org.Public()}
	fetch := func(wantRead int) []*directory.Record {
		t.Helper()
		got, stats, err := nodes[3].s.Fetch(ctx, signers, HeldIn(st))
		if err != nil {
			t.Fatal(err)
		}
		if stats.Listed != 42 || stats.Listed-stats.Skipped != wantRead {
			t.Fatalf("listed %d slots, read %d; want 42 and %d", stats.Listed, stats.Listed-stats.Skipped, wantRead)
		}
		slices.SortStableFunc(got, func(a, b *directory.Record) int { return applyRank(a.Type) - applyRank(b.Type) })
		for _, r := range got {
			if _, err := st.Apply(r); err != nil && !errors.Is(err, directory.ErrDuplicate) {
				t.Fatalf("applying a fetched %s: %v", r.Type, err)
			}
		}
		return got
	}
	if got := fetch(42); len(got) != 42 {
		t.Fatalf("first walk found %d records, want 42", len(got))
	}
	fetch(0)

	newer := nw.Entry(t, org, "servicio-007", 2)
	putAll(t, ctx, nodes, []*directory.Record{newer})
	manifest(append(slices.Concat(recs[2:9], recs[10:]), newer))
	got := fetch(1)
	if len(got) != 1 || got[0].Hash() != newer.Hash() {
		t.Fatalf("the walk after an update found %d records, want the new version alone", len(got))
	}

	// A page made before heads existed: every slot it lists is read.
	var ids []directory.SlotID
	for _, r := range st.SignedBy(org.Public()) {
		ids = append(ids, slotID(t, r))
	}
	old := nw.Sign(t, &directory.Manifest{Page: 0, Pages: 1, Issued: nw.Now.Unix() + 60, Slots: ids}, org)
	if err := nodes[1].s.Put(ctx, old); err != nil {
		t.Fatal(err)
	}
	fetch(40)

	// A slot listed twice, with the held record's head and another: read.
	// Listed many times over, it is still one slot read once.
	twice := []directory.SlotHead{listed(t, recs[2]), {Slot: slotID(t, recs[2]), Head: directory.Head{1}}}
	for i := range 5000 {
		twice = append(twice, directory.SlotHead{Slot: slotID(t, recs[2]), Head: directory.Head{2, byte(i), byte(i >> 8)}})
	}
	nw.Now = nw.Now.Add(2 * time.Minute) // later than the page put by hand
	if err := nodes[1].s.PublishManifest(ctx, org, twice); err != nil {
		t.Fatal(err)
	}
	got, stats, err := nodes[3].s.Fetch(ctx, []directory.PublicKey{org.Public()}, HeldIn(st))
	if err != nil || stats.Listed != 1 || stats.Skipped != 0 || len(got) != 1 {
		t.Fatalf("a slot listed %d times with a head not held: %d listed, %d skipped, %d records, %v; want it read once",
			len(twice), stats.Listed, stats.Skipped, len(got), err)
	}
}
