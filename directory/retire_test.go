package directory_test

import (
	"errors"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"weak"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// The pages of past rotations leave memory once retired, and everything a
// node does with them still works, by reading them again through the
// loader: the same digest, hashes and counts without a single read; the
// pages, a package opened, a record served and the records a steward
// relayed, each read when asked for. A page not stored yet stays.
func TestRetiredPagesAreReadAgainWhenAskedFor(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	rs := nw.Recipients(t, 150, org)
	key2, key3 := directory.NewReadKey(), directory.NewReadKey()
	e2, pages2 := nw.Rotation(t, 2, 1, directory.Hash{}, key2, rs, nw.Stewards[:2]...)
	e3, pages3 := nw.Rotation(t, 3, 1, directory.Hash{}, key3, rs[:4], nw.Stewards[:2]...)
	if len(pages2) < 2 {
		t.Fatalf("%d pages: the test needs a rotation of several", len(pages2))
	}
	disk := map[directory.Hash]*directory.Record{}
	var all []*directory.Record
	for _, r := range slices.Concat([]*directory.Record{nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"), nw.FirstEpoch}, nw.FirstPages, []*directory.Record{e2}, pages2, []*directory.Record{e3}, pages3) {
		all = append(all, decoded(t, r)) // as a node takes them: decoded from the wire
		disk[r.Hash()] = decoded(t, r)   // and as its store gives them back
	}
	s := nw.State()
	mustApply(t, s, all...)
	// Weak pointers to the bodies of the page records the state holds
	// (the decoded packages are slices of them): nothing may keep them
	// alive once retired.
	var held []weak.Pointer[byte]
	for _, r := range all {
		if r.Type == directory.TypeEpochPage {
			held = append(held, weak.Make(&r.Body[0]))
		}
	}
	all = nil

	if n := s.RetirePages(func(directory.Hash) bool { return true }); n != 0 {
		t.Fatalf("without a loader %d pages were retired", n)
	}
	var loads atomic.Int64
	failing := false
	s.SetRecordLoader(func(h directory.Hash) (*directory.Record, error) {
		loads.Add(1)
		if r, ok := disk[h]; ok && !failing {
			return decoded(t, r), nil
		}
		return nil, errors.New("not in the store")
	})
	digest, hashes, stats := s.Digest(), s.Hashes(), s.Stats()
	rot, _ := s.CurrentRotation()
	toRetire := s.PagesToRetire()
	if want := len(nw.FirstPages) + len(pages2); len(toRetire) != want {
		t.Fatalf("%d page records to retire, want epochs 1 and 2's %d", len(toRetire), want)
	}
	// One page of epoch 2 is not on disk yet: that page stays in memory.
	notYet := pages2[1].Hash()
	if n := s.RetirePages(func(h directory.Hash) bool { return h != notYet }); n != len(toRetire)-1 {
		t.Fatalf("retired %d page records, want %d", n, len(toRetire)-1)
	}
	if got := s.PagesToRetire(); len(got) != 1 || got[0] != notYet {
		t.Fatalf("left to retire %d records, want the one not stored", len(got))
	}
	if n := s.RetirePages(func(directory.Hash) bool { return true }); n != 1 || s.RetiredPages() != len(toRetire) {
		t.Fatalf("retired %d once stored, want 1; %d held on disk only, want %d", n, s.RetiredPages(), len(toRetire))
	}
	runtime.GC()
	for i, w := range held {
		if i < len(nw.FirstPages)+len(pages2) && w.Value() != nil {
			t.Fatalf("page record %d of a past rotation is still in memory after retirement", i)
		}
		if i >= len(nw.FirstPages)+len(pages2) && w.Value() == nil {
			t.Fatalf("page record %d of the current rotation left memory", i)
		}
	}

	newRot, _ := s.CurrentRotation()
	if s.Digest() != digest || !slices.Equal(s.Hashes(), hashes) || s.Stats() != stats || newRot != rot || len(s.IncompleteRotations()) != 0 {
		t.Fatal("retiring pages changed what the state shows")
	}
	// A new member changes the governance: nothing retired is read. Nor
	// for the relaying steward's manifest, which lists every page it
	// signed, as the records themselves name their slots.
	mustApply(t, s, nw.Admit(t, dirtest.MustIdentity(t), "Otra Red"))
	listed := map[directory.SlotHead]bool{}
	for _, sh := range s.SignedSlots(nw.Stewards[0].Public()) {
		listed[sh] = true
	}
	for _, r := range disk {
		if r.Type != directory.TypeEpochPage {
			continue
		}
		name, err := r.Slot()
		if err != nil {
			t.Fatal(err)
		}
		if sh := (directory.SlotHead{Slot: directory.SlotIDOf(name), Head: directory.HeadOf(r.Hash())}); !listed[sh] {
			t.Fatalf("page slot %s is not among the steward's signed slots", name)
		}
	}
	if n := loads.Load(); n != 0 {
		t.Fatalf("%d pages read for digests, counts, a governance change and a manifest; want none", n)
	}

	e2body := s.Epochs()[1]
	got := s.EpochPages(e2body)
	if len(got) != len(pages2) {
		t.Fatalf("%d of epoch 2's %d pages read back", len(got), len(pages2))
	}
	if k, err := directory.OpenKeyPackage(org, nw.ID, e2body, got); err != nil || k != key2 {
		t.Fatalf("opening the organization's epoch-2 package from retired pages: %v", err)
	}
	if r, ok := s.Record(pages2[0].Hash()); !ok || r.Hash() != pages2[0].Hash() {
		t.Fatal("a retired page record is not served")
	}
	if got := s.PageRecords(2, e2body.Rotation, 1000); len(got) != len(pages2) {
		t.Fatalf("%d page records offered for epoch 2, want %d", len(got), len(pages2))
	}
	relayed := 0
	for _, r := range s.SignedBy(nw.Stewards[0].Public()) {
		if r.Type == directory.TypeEpochPage {
			relayed++
		}
	}
	if want := len(nw.FirstPages) + len(pages2) + len(pages3); relayed != want {
		t.Fatalf("the relaying steward signed %d page records the state lists, want %d", relayed, want)
	}
	if n := len(s.Records()); n != stats.Records+1 {
		t.Fatalf("Records lists %d, the state holds %d", n, stats.Records+1)
	}

	// Another steward relays a page of epoch 2 after it was retired: the
	// copy is held in memory until it is on disk too, listed once.
	copyBody, err := pages2[0].DecodeBody()
	if err != nil {
		t.Fatal(err)
	}
	relay := nw.Sign(t, copyBody, nw.Stewards[1])
	mustApply(t, s, decoded(t, relay))
	disk[relay.Hash()] = decoded(t, relay) // written, not yet retired
	if got := s.PagesToRetire(); len(got) != 1 || got[0] != relay.Hash() {
		t.Fatalf("after a relayed copy, %d records to retire, want the copy", len(got))
	}
	copies := 0
	for _, r := range s.SignedBy(nw.Stewards[1].Public()) {
		if r.Hash() == relay.Hash() {
			copies++
		}
	}
	if copies != 1 {
		t.Fatalf("the relayed copy is listed %d times among its steward's records, want once", copies)
	}
	if n := s.RetirePages(func(directory.Hash) bool { return true }); n != 1 {
		t.Fatalf("retired %d records once the copy is stored, want 1", n)
	}

	// A store that cannot read them: the pages are not shown, and nothing
	// the state decides changes.
	failing = true
	if _, ok := s.Record(pages2[0].Hash()); ok {
		t.Fatal("a page the loader cannot read is served")
	}
	if got := s.EpochPages(e2body); len(got) != 0 {
		t.Fatalf("%d pages shown that the loader cannot read", len(got))
	}
	if s.CurrentEpoch() != 3 || !s.Has(pages2[0].Hash()) {
		t.Fatal("a failing loader changed the state")
	}
}
