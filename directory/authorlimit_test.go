package directory_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// limitedNetwork is a network whose charter version 2 sets policy, and a
// member org admitted under it; recs are the governance records.
func limitedNetwork(t *testing.T, policy directory.Policy) (*dirtest.Network, *directory.Identity, []*directory.Record) {
	t.Helper()
	nw := dirtest.New(t, 3, 2)
	v2, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, 2, policy, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	org := dirtest.MustIdentity(t)
	return nw, org, []*directory.Record{nw.Genesis, nw.Sign(t, v2, nw.Stewards[:2]...), nw.Admit(t, org, "Colectivo")}
}

// bigEntry is entry id at seq with a description of about pad bytes.
func bigEntry(nw *dirtest.Network, id string, seq uint64, pad int) *directory.Entry {
	e := dirtest.SampleEntry(id, seq, nw.Now)
	e.Service.Description = strings.Repeat("a", pad)
	return e
}

func visibleIDs(s *directory.State) []string {
	var ids []string
	for _, r := range s.Search(directory.Query{}) {
		ids = append(ids, r.Entry.ID)
	}
	slices.Sort(ids)
	return ids
}

// An organization over the charter's entry limit has only the entries
// that rank first shown, on every node whatever the order; deleting one
// lets the next in rank into view.
func TestAuthorEntryLimitKeepsRankedPrefix(t *testing.T) {
	nw, org, gov := limitedNetwork(t, directory.Policy{MaxAuthorEntries: 3})
	var entries []*directory.Record
	for i := range 5 {
		entries = append(entries, nw.Entry(t, org, fmt.Sprintf("svc-%d", i), 1))
	}
	a := nw.State()
	mustApply(t, a, gov...)
	mustApply(t, a, entries...)
	b := nw.State()
	backward := slices.Clone(entries)
	slices.Reverse(backward)
	mustApply(t, b, backward...) // entries first: the limits are not known yet
	mustApply(t, b, gov...)
	if a.Digest() != b.Digest() {
		t.Fatal("two orders of the same records give different digests")
	}
	shown := visibleIDs(a)
	if len(shown) != 3 {
		t.Fatalf("%d entries shown (%v), want the charter's limit of 3", len(shown), shown)
	}
	if u := a.Usage(org.Public()); u.Entries != 5 || u.Held != 2 || u.MaxEntries != 3 {
		t.Fatalf("usage %+v, want 5 live, 2 held, limit 3", u)
	}
	if !slices.Equal(visibleIDs(b), shown) {
		t.Fatalf("other order shows %v, want %v", visibleIDs(b), shown)
	}
	// Deleting a shown entry frees a slot for a held one.
	del := dirtest.SampleEntry(shown[0], 2, nw.Now)
	del.Deleted, del.Service = true, nil
	tomb := nw.Sign(t, del, org)
	mustApply(t, a, tomb)
	// A tombstone counts until it expires: still 3 slots in the prefix.
	if got := visibleIDs(a); len(got) != 2 {
		t.Fatalf("after a deletion %v shown, want 2 (the tombstone still counts)", got)
	}
	nw.Now = nw.Now.AddDate(0, 4, 0)
	// Entries expire together here; what matters is that Expire
	// re-ranks and the pool quota is released.
	a.Expire()
	if u := a.Usage(org.Public()); u.Entries != 0 || u.Held != 0 {
		t.Fatalf("usage after expiry %+v, want nothing live or held", u)
	}
}

// The bytes limit: a shrinking update lets a held entry back into view,
// and the result does not depend on whether the shrink came before or
// after the entry it makes room for.
func TestAuthorBytesLimitShrinkingUpdate(t *testing.T) {
	nw, org, gov := limitedNetwork(t, directory.Policy{MaxAuthorBytes: 8192})
	big := map[string]*directory.Record{}
	for _, id := range []string{"a", "b", "c"} {
		big[id] = nw.Sign(t, bigEntry(nw, id, 1, 3500), org)
	}
	s := nw.State()
	mustApply(t, s, gov...)
	mustApply(t, s, big["a"], big["b"], big["c"])
	if u := s.Usage(org.Public()); u.Held != 1 {
		t.Fatalf("usage %+v: three ~4 KB entries under an 8 KiB limit, want one held", u)
	}
	held := ""
	shown := visibleIDs(s)
	for _, id := range []string{"a", "b", "c"} {
		if !slices.Contains(shown, id) {
			held = id
		}
	}
	// Shrink one of the shown entries: now all three fit.
	other := shown[0]
	shrink := nw.Sign(t, bigEntry(nw, other, 2, 10), org)
	mustApply(t, s, shrink)
	if got := visibleIDs(s); len(got) != 3 {
		t.Fatalf("after shrinking %s, %v shown, want all three", other, got)
	}
	// The same set, the shrink first: the same view.
	s2 := nw.State()
	mustApply(t, s2, gov...)
	mustApply(t, s2, shrink, big[held])
	for _, id := range []string{"a", "b", "c"} {
		if id != other && id != held {
			mustApply(t, s2, big[id])
		}
	}
	_, err := s2.Apply(big[other])
	if !errors.Is(err, directory.ErrStale) {
		t.Fatalf("old version after the shrink: %v, want ErrStale", err)
	}
	if s.Digest() != s2.Digest() {
		t.Fatal("shrink before or after the held entry gives different digests")
	}
}

// A publishing node asks before it signs, and hears why in words.
func TestCheckPublishNamesTheLimit(t *testing.T) {
	nw, org, gov := limitedNetwork(t, directory.Policy{MaxAuthorEntries: 2})
	s := nw.State()
	mustApply(t, s, gov...)
	mustApply(t, s, nw.Entry(t, org, "one", 1), nw.Entry(t, org, "two", 1))
	e := dirtest.SampleEntry("three", 1, nw.Now)
	r := nw.Sign(t, e, org)
	err := s.CheckPublish(org.Public(), e, len(r.Encode()))
	if !errors.Is(err, directory.ErrAuthorLimit) || !strings.Contains(err.Error(), "has 2 live entries; the network allows 2") {
		t.Fatalf("publishing a third entry: %v, want ErrAuthorLimit naming 2 of 2", err)
	}
	// A new version of an entry it has is fine.
	e2 := dirtest.SampleEntry("two", 2, nw.Now)
	if err := s.CheckPublish(org.Public(), e2, len(nw.Sign(t, e2, org).Encode())); err != nil {
		t.Fatalf("updating an entry within the limit: %v", err)
	}
}

// Past the pending pool's per-key quota, an author's further entries are
// refused outright: one member cannot make every node hold unbounded
// entries it does not show.
func TestAuthorLimitHeldEntriesAreBounded(t *testing.T) {
	nw, org, gov := limitedNetwork(t, directory.Policy{MaxAuthorEntries: 1})
	s := nw.State()
	mustApply(t, s, gov...)
	var err error
	n := 0
	for i := range directory.MaxPendingEntriesPerKey + 5 {
		if _, err = s.Apply(nw.Entry(t, org, fmt.Sprintf("svc-%03d", i), 1)); err != nil {
			break
		}
		n++
	}
	if !errors.Is(err, directory.ErrAuthorLimit) || !errors.Is(err, directory.ErrQuota) {
		t.Fatalf("after %d entries: %v, want ErrAuthorLimit (an ErrQuota)", n, err)
	}
	if n != 1+directory.MaxPendingEntriesPerKey {
		t.Fatalf("took %d entries, want the limit of 1 plus %d held", n, directory.MaxPendingEntriesPerKey)
	}
}

func TestCharterRefusesAuthorLimitsOutOfRange(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	for _, p := range []directory.Policy{
		{MaxAuthorUpdatesPerHour: 1<<24 + 1},
		{MaxAuthorEntries: 1<<24 + 1},
		{MaxAuthorBytes: 100},
		{MaxAuthorBytes: 1<<40 + 1},
	} {
		if _, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, 2, p, nw.Now); !errors.Is(err, directory.ErrInvalid) {
			t.Errorf("policy %+v: %v, want ErrInvalid", p, err)
		}
	}
}
