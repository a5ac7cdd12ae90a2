package directory_test

import (
	"fmt"
	"reflect"
	"testing"

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
