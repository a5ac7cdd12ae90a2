package directory_test

import (
	"errors"
	"testing"
	"unsafe"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// Issue 14, bad input: pages that no approved rotation lists are refused
// with a reason that names what is wrong, and nothing is stored.
func TestEpochPageRefusals(t *testing.T) {
	f := newRejectFixture(t)
	nw, st := f.nw, f.nw.Stewards
	defer directory.PadForTest(func(n int) int { return n + 4 })()
	rs := []directory.Recipient{{Key: st[0].Public(), KEM: st[0].KEMPublic()}, {Key: f.org.Public(), KEM: f.org.KEMPublic()}}
	// Small records: the rotation takes three pages.
	e, pages, err := directory.NewEpoch(nw.ID, 1, 1, directory.Hash{}, nw.Key, rs, nw.Now, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if len(pages) < 2 {
		t.Fatalf("%d pages, want several", len(pages))
	}
	epoch := nw.Sign(t, e, st[0], st[1])
	s := f.state(t, epoch, nw.Sign(t, pages[0], st[0]))
	if rot, _ := s.CurrentRotation(); rot.Held != 1 || rot.Pages != len(pages) || rot.Complete() {
		t.Fatalf("rotation status %+v, want 1 of %d pages", rot, len(pages))
	}

	_, otherPages, err := directory.NewEpoch(nw.ID, 1, 1, directory.Hash{}, directory.NewReadKey(), rs, nw.Now, 4096)
	if err != nil {
		t.Fatal(err)
	}
	beyond := *pages[0]
	beyond.Index = uint16(len(pages))
	forged := *pages[1]
	forged.Packages = forged.Packages[1:]
	revoked := nw.Sign(t, pages[1], st[2])
	for _, c := range []struct {
		name string
		rec  *directory.Record
		want error
	}{
		{"a page of a rotation nobody proposed", nw.Sign(t, otherPages[0], st[0]), directory.ErrPendingSignature},
		{"a page beyond the rotation's count", nw.Sign(t, &beyond, st[0]), directory.ErrInvalid},
		{"a page at a listed index with other packages, by a signer of the epoch", nw.Sign(t, &forged, st[1]), directory.ErrPageMismatch},
		{"a page relayed by a key that is not a steward", nw.Sign(t, pages[1], f.org), directory.ErrPendingSignature},
	} {
		before := s.Stats().Records
		if _, err := s.Apply(c.rec); !errors.Is(err, c.want) {
			t.Fatalf("%s: %v, want %v", c.name, err, c.want)
		}
		if s.Has(c.rec.Hash()) || s.Stats().Records != before {
			t.Fatalf("%s: refused but stored", c.name)
		}
	}
	// The forged page came from a steward who signed the epoch: the same
	// key said two things about one slot.
	eq := s.Equivocations()
	if len(eq) != 1 || eq[0].Key != st[1].Public() {
		t.Fatalf("equivocations %+v, want the forged page's signer", eq)
	}

	// A page's authority is the epoch that lists it, not its relayer's
	// standing (PROTOCOL.md §6): a page relayed by a steward who is
	// revoked afterwards stays held, and the same page relayed by a
	// steward revoked before it arrives is taken too, so the held pages
	// do not depend on the order.
	mustApply(t, s, nw.Sign(t, pages[2], st[2]))
	mustApply(t, s, nw.RevokeBy(t, st[2].Public()))
	if rot, _ := s.CurrentRotation(); rot.Held != 2 {
		t.Fatalf("rotation status %+v after the relaying steward's revocation, want 2 pages still held", rot)
	}
	mustApply(t, s, revoked)
	if rot, _ := s.CurrentRotation(); rot.Held != 3 {
		t.Fatalf("rotation status %+v after a revoked steward relayed a listed page, want 3 pages held", rot)
	}
	// A rotation only the revoked steward proposes names no page: its
	// epoch is refused, and so are its pages, with nothing stored.
	rogue, roguePages, err := directory.NewEpoch(nw.ID, 2, 1, directory.Hash{}, directory.NewReadKey(), rs, nw.Now, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Apply(nw.Sign(t, rogue, st[2])); !errors.Is(err, directory.ErrRevoked) {
		t.Fatalf("an epoch proposed by a revoked steward: %v, want ErrRevoked", err)
	}
	before := s.Stats().Records
	roguePage := nw.Sign(t, roguePages[0], st[2])
	if _, err := s.Apply(roguePage); !errors.Is(err, directory.ErrPendingSignature) {
		t.Fatalf("a page of a rotation only a revoked steward proposed: %v, want ErrPendingSignature", err)
	}
	if s.Has(roguePage.Hash()) || s.Stats().Records != before {
		t.Fatal("a page of a rotation only a revoked steward proposed: refused but stored")
	}
	for _, pg := range pages[1:] {
		mustApply(t, s, nw.Sign(t, pg, st[0]))
	}
	if rot, _ := s.CurrentRotation(); !rot.Complete() {
		t.Fatalf("rotation status %+v, want complete", rot)
	}
	if k, err := directory.OpenKeyPackage(f.org, nw.ID, e, s.EpochPages(e)); err != nil || k != nw.Key {
		t.Fatalf("the organization opens its package from the held pages: %v", err)
	}
}

// The rotation one steward makes after the stewards revoke a key takes
// effect only once every page is held, and never when a page seals the
// new key to the revoked key.
func TestLoneRotationNeedsEveryPage(t *testing.T) {
	f := newRejectFixture(t)
	nw, st := f.nw, f.nw.Stewards
	defer directory.PadForTest(func(n int) int { return n + 4 })()
	rs := []directory.Recipient{{Key: st[0].Public(), KEM: st[0].KEMPublic()}, {Key: f.org.Public(), KEM: f.org.KEMPublic()}}
	first, firstPages := nw.Rotation(t, 1, 1, directory.Hash{}, nw.Key, rs, st[0], st[1])
	rev := nw.RevokeBy(t, f.org.Public())
	s := f.state(t, append([]*directory.Record{first, rev}, firstPages...)...)

	sealsToRevoked, badPages, err := directory.NewEpoch(nw.ID, 2, 1, rev.ProposalID(), directory.NewReadKey(), rs, nw.Now, 4096)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, nw.Sign(t, sealsToRevoked, st[1]))
	for _, pg := range badPages {
		mustApply(t, s, nw.Sign(t, pg, st[1]))
	}
	if n := s.CurrentEpoch(); n != 1 {
		t.Fatalf("a lone rotation sealing to the revoked key took effect: epoch %d", n)
	}

	good, goodPages, err := directory.NewEpoch(nw.ID, 2, 1, rev.ProposalID(), directory.NewReadKey(), rs[:1], nw.Now, 4096)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, nw.Sign(t, good, st[0]))
	for i, pg := range goodPages {
		if n := s.CurrentEpoch(); n != 1 {
			t.Fatalf("a lone rotation took effect with %d of %d pages: epoch %d", i, len(goodPages), n)
		}
		mustApply(t, s, nw.Sign(t, pg, st[0]))
	}
	if n := s.CurrentEpoch(); n != 2 {
		t.Fatalf("a complete lone rotation after the stewards' revocation: epoch %d, want 2", n)
	}
	// Whoever relayed the pages, the same set gives the same view.
	again := nw.State()
	recs := append([]*directory.Record{}, f.base...)
	recs = append(recs, first, rev, nw.Sign(t, good, st[0]))
	recs = append(recs, firstPages...)
	for _, pg := range goodPages {
		recs = append(recs, nw.Sign(t, pg, st[2]))
	}
	for i := len(recs) - 1; i >= 0; i-- { // pages first: refused until their epoch, taken on the next pass
		again.Apply(recs[i])
	}
	mustApplyAll(t, again, recs)
	if again.CurrentEpoch() != 2 {
		t.Fatalf("pages relayed by another steward: epoch %d, want 2", again.CurrentEpoch())
	}
}

func mustApplyAll(t *testing.T, s *directory.State, recs []*directory.Record) {
	t.Helper()
	for _, r := range recs {
		// What the revoked organization signed is refused in this order.
		if _, err := s.Apply(r); err != nil && !errors.Is(err, directory.ErrDuplicate) && !errors.Is(err, directory.ErrRevoked) {
			t.Fatalf("apply %s: %v", r.Type, err)
		}
	}
}

// A node holds every page of every rotation it has seen, so a held page
// must cost its record's body and no more: each key package is read from
// the body the page was decoded from, not from a second copy (which, with
// the hash cache's own copy, tripled a 10,000-recipient rotation's 12 MB
// on every node, for every rotation; issue 14). The packages still open.
func TestHeldPagesShareTheirRecordsBody(t *testing.T) {
	f := newRejectFixture(t)
	nw, st := f.nw, f.nw.Stewards
	rs := []directory.Recipient{{Key: st[0].Public(), KEM: st[0].KEMPublic()}, {Key: f.org.Public(), KEM: f.org.KEMPublic()}}
	for range 150 {
		id := dirtest.MustIdentity(t)
		rs = append(rs, directory.Recipient{Key: id.Public(), KEM: id.KEMPublic()})
	}
	first, pages := nw.Rotation(t, 1, 1, directory.Hash{}, nw.Key, rs, st[0], st[1])
	if len(pages) < 2 {
		t.Fatalf("%d pages: the test needs a rotation of several", len(pages))
	}
	var held []*directory.Record
	for _, pg := range pages {
		held = append(held, decoded(t, pg)) // as a node takes them: decoded from the wire
	}
	s := f.state(t, append([]*directory.Record{first}, held...)...)
	e := s.Epochs()[0]
	got := s.EpochPages(e)
	if len(got) != len(pages) {
		t.Fatalf("%d of %d pages held", len(got), len(pages))
	}
	within := func(b, body []byte) bool {
		p, lo := uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(unsafe.Pointer(unsafe.SliceData(body)))
		return p >= lo && p+uintptr(len(b)) <= lo+uintptr(len(body))
	}
	for i, pg := range got {
		for j, k := range pg.Packages {
			if !within(k.Sealed, held[i].Body) {
				t.Fatalf("page %d package %d is held as a copy, apart from its record's body", i, j)
			}
		}
	}
	if k, err := directory.OpenKeyPackage(f.org, nw.ID, e, got); err != nil || k != nw.Key {
		t.Fatalf("the organization opens its package from the held pages: %v", err)
	}
}
