package directory_test

import (
	"fmt"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// The state keeps an entry once, as its encoded record, and decodes it
// again when it is shown: every listing, lookup and search result is the
// entry as published, through new versions (a new name, new categories)
// and a deletion, and no decoded entry stays behind in the slots or the
// index, nor after the publisher's revocation takes its entries out.
func TestStateKeepsEntriesEncodedOnly(t *testing.T) {
	nw := dirtest.New(t, 1, 1)
	org := dirtest.MustIdentity(t)
	s := nw.State()
	mustApply(t, s, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"))
	want := map[string]*directory.Entry{}
	publish := func(e *directory.Entry) {
		t.Helper()
		r := decoded(t, nw.Sign(t, e, org))
		mustApply(t, s, r)
		if e.Deleted {
			delete(want, e.ID)
		} else {
			want[e.ID] = e
		}
	}
	for i := range 40 {
		e := dirtest.SampleEntry(fmt.Sprintf("servicio-%02d", i), 1, nw.Now)
		e.Service.Name = fmt.Sprintf("Servicio %02d", i)
		e.Service.Description = fmt.Sprintf("Acompañamiento número %d.", i)
		publish(e)
	}
	for i := range 10 {
		e := dirtest.SampleEntry(fmt.Sprintf("servicio-%02d", i), 2, nw.Now)
		e.Service.Name = fmt.Sprintf("Refugio %02d", i)
		e.Service.Categories = []string{"shelter"}
		e.Service.Areas = []directory.Area{{City: "Quito", Country: "EC"}}
		publish(e)
	}
	gone := dirtest.SampleEntry("servicio-39", 2, nw.Now)
	gone.Service = nil
	gone.Deleted = true
	publish(gone)

	check := func(when string) {
		t.Helper()
		if n := directory.DecodedEntriesHeldForTest(s); n != 0 {
			t.Fatalf("%s: the state keeps %d decoded entries", when, n)
		}
		listed := 0
		for _, l := range s.Entries(org.Public()) {
			if l.Entry.Deleted {
				continue
			}
			listed++
			if !reflect.DeepEqual(l.Entry, want[l.Entry.ID]) {
				t.Fatalf("%s: listed %+v, published %+v", when, l.Entry.Service, want[l.Entry.ID].Service)
			}
			got, ok := s.Lookup(l.Key)
			if !ok || !reflect.DeepEqual(got.Entry, want[l.Entry.ID]) {
				t.Fatalf("%s: lookup of %s gave %+v", when, l.Key, got.Entry)
			}
		}
		if listed != len(want) {
			t.Fatalf("%s: %d entries listed, %d published", when, listed, len(want))
		}
		res := s.Search(directory.Query{Limit: directory.MaxLimit})
		if len(res) != len(want) {
			t.Fatalf("%s: %d search results, %d entries", when, len(res), len(want))
		}
		for _, r := range res {
			if !reflect.DeepEqual(r.Entry, want[r.Entry.ID]) {
				t.Fatalf("%s: search result %+v, published %+v", when, r.Entry.Service, want[r.Entry.ID].Service)
			}
		}
		if res := s.Search(directory.Query{Text: "refugio", Category: "shelter", Area: "EC"}); len(res) != 10 {
			t.Fatalf("%s: %d shelters in Ecuador found, want 10", when, len(res))
		}
	}
	check("after publishing")

	// The organization is revoked and a second one admitted with the same
	// entries: hiding takes every entry out of the index, decoding each.
	mustApply(t, s, nw.RevokeBy(t, org.Public()))
	if res := s.Search(directory.Query{}); len(res) != 0 {
		t.Fatalf("%d entries shown after the revocation", len(res))
	}
	if n := directory.DecodedEntriesHeldForTest(s); n != 0 {
		t.Fatalf("after the revocation: the state keeps %d decoded entries", n)
	}
}

// A search result's listing reuses the entry the search decoded while the
// slot still holds that record, and shows the slot's own version once a
// newer one replaced it; FindEntries decodes only what it finds.
func TestListingOfSearchResultFollowsTheSlot(t *testing.T) {
	nw := dirtest.New(t, 1, 1)
	org := dirtest.MustIdentity(t)
	s := nw.State()
	mustApply(t, s, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"))
	first := dirtest.SampleEntry("refugio", 1, nw.Now)
	first.Service.Name = "Albergue Quetzal Norte"
	mustApply(t, s, decoded(t, nw.Sign(t, first, org)), decoded(t, nw.Sign(t, dirtest.SampleEntry("otra", 1, nw.Now), org)))

	res := s.Search(directory.Query{Text: "quetzal"})
	if len(res) != 1 {
		t.Fatalf("%d results, want the albergue", len(res))
	}
	l, ok := s.ListingOf(res[0])
	if !ok || l.Entry != res[0].Entry || l.Entry.Service.Name != "Albergue Quetzal Norte" {
		t.Fatalf("listing of an unchanged result: %+v (the result's entry %p, the listing's %p)", l.Entry, res[0].Entry, l.Entry)
	}

	second := dirtest.SampleEntry("refugio", 2, nw.Now)
	second.Service.Name = "Albergue Quetzal Sur"
	mustApply(t, s, decoded(t, nw.Sign(t, second, org)))
	l, ok = s.ListingOf(res[0])
	if !ok || l.Entry.Seq != 2 || l.Entry.Service.Name != "Albergue Quetzal Sur" || l.Record.Hash() != l.Hash {
		t.Fatalf("listing of a result replaced since: seq %d %q, want seq 2 \"Albergue Quetzal Sur\"", l.Entry.Seq, l.Entry.Service.Name)
	}

	found := s.FindEntries(directory.PublicKey{}, func(id string, _ directory.Hash) bool { return id == "refugio" })
	if len(found) != 1 || found[0].Entry.ID != "refugio" || found[0].Entry.Seq != 2 {
		t.Fatalf("FindEntries by ID found %d listings", len(found))
	}
	if all := s.FindEntries(org.Public(), nil); len(all) != 2 || len(s.Entries(org.Public())) != 2 {
		t.Fatalf("FindEntries without a match lists %d entries, want 2", len(all))
	}
}

// HeldEntrySlots, which a node's DHT manifest lists without decoding a
// single entry, names exactly the slots of the entries the state holds by
// that publisher, each with the head of the version held: a new version
// keeps its slot and changes its head, a tombstone is still held, an
// expired entry is not, and another publisher's entries are not its.
func TestHeldEntrySlotsAreTheHeldEntries(t *testing.T) {
	nw := dirtest.New(t, 1, 1)
	org, other := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	s := nw.State()
	mustApply(t, s, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"), nw.Admit(t, other, "Otra Red"))
	short := dirtest.SampleEntry("breve", 1, nw.Now)
	short.Expires = nw.Now.Add(24 * time.Hour).Unix()
	tomb := dirtest.SampleEntry("borrada", 2, nw.Now)
	tomb.Deleted, tomb.Service = true, nil
	mustApply(t, s,
		nw.Entry(t, org, "asesoria", 1), nw.Entry(t, org, "asesoria", 2),
		nw.Entry(t, org, "albergue", 1), nw.Entry(t, org, "borrada", 1),
		nw.Sign(t, tomb, org), nw.Sign(t, short, org),
		nw.Entry(t, other, "asesoria", 1))
	decodedSlots := func() map[directory.SlotID]directory.Head {
		out := map[directory.SlotID]directory.Head{}
		for _, r := range s.Records() {
			if r.Type != directory.TypeEntry || r.Sigs[0].Key != org.Public() {
				continue
			}
			name, err := r.Slot()
			if err != nil {
				t.Fatal(err)
			}
			out[directory.SlotIDOf(name)] = directory.HeadOf(r.Hash())
		}
		return out
	}
	check := func(want int) {
		t.Helper()
		got := s.HeldEntrySlots(org.Public())
		decoded := decodedSlots()
		if len(got) != want || len(decoded) != want {
			t.Fatalf("%d slots listed, %d held records decode to slots; want %d", len(got), len(decoded), want)
		}
		for _, sh := range got {
			head, ok := decoded[sh.Slot]
			if !ok {
				t.Fatalf("slot %x listed but no held entry of the publisher is in it", sh.Slot)
			}
			if sh.Head != head {
				t.Fatalf("slot %x listed with head %x, the held version's is %x", sh.Slot, sh.Head, head)
			}
		}
	}
	check(4) // asesoria (v2), albergue, borrada (tombstone), breve
	nw.Now = nw.Now.Add(48 * time.Hour)
	s.Expire()
	check(3) // breve expired

	// SignedBy, which the node keeps alive in the DHT, is every pooled
	// record a key signed: the steward's genesis and admissions, the
	// organization's held entries and nothing of the other's.
	for _, k := range []*directory.Identity{nw.Stewards[0], org, other} {
		want := map[directory.Hash]bool{}
		for _, r := range s.Records() {
			if slices.ContainsFunc(r.Sigs, func(sg directory.Signature) bool { return sg.Key == k.Public() }) {
				want[r.Hash()] = true
			}
		}
		got := s.SignedBy(k.Public())
		if len(got) != len(want) || len(want) == 0 {
			t.Fatalf("SignedBy lists %d records, the pool holds %d signed by that key", len(got), len(want))
		}
		for _, r := range got {
			if !want[r.Hash()] {
				t.Fatalf("SignedBy lists %s, which that key did not sign", r.Type)
			}
		}
	}
}
