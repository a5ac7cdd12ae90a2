package directory_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// expiringRecords are a network's founding records and two entries of a
// member, soon one that expires an hour after the network's time.
func expiringRecords(t *testing.T) (nw *dirtest.Network, recs []*directory.Record, soon *directory.Entry) {
	nw = dirtest.New(t, 1, 1)
	org := dirtest.MustIdentity(t)
	soon = dirtest.SampleEntry("pronto", 1, nw.Now)
	soon.Expires = nw.Now.Add(time.Hour).Unix()
	recs = []*directory.Record{nw.Genesis, nw.Admit(t, org, "Colectivo"), nw.Entry(t, org, "asesoria", 1), nw.Sign(t, soon, org)}
	return nw, recs, soon
}

// The digest is kept while nothing changes, until the first entry it
// counts expires (at 100,000 entries computing it takes 60 ms, and every
// status request asks for it), and it is never stale: at the entry's
// expiry, and with the clock gone back before it, it is what a state
// holding the same records computes afresh.
func TestDigestKeptUntilAnEntryExpires(t *testing.T) {
	nw, recs, soon := expiringRecords(t)
	now := nw.Now
	s := directory.NewState(nw.ID, func() time.Time { return now })
	mustApply(t, s, recs...)
	afresh := func() directory.Hash {
		f := directory.NewState(nw.ID, func() time.Time { return now })
		for _, r := range recs {
			f.Apply(r)
		}
		return f.Digest()
	}
	first := s.Digest()
	now = time.Unix(soon.Expires, 0).Add(-time.Second)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	s.Digest()
	runtime.ReadMemStats(&after)
	// Computing it allocates (15 times for this state); reading the kept
	// one does not. A margin for anything else the process allocates.
	if allocs := after.Mallocs - before.Mallocs; allocs >= 10 {
		t.Fatalf("the digest was computed again (%d allocations) with nothing changed and nothing expired", allocs)
	}
	if s.Digest() != first {
		t.Fatal("the digest changed with nothing changed and nothing expired")
	}
	now = time.Unix(soon.Expires, 0)
	if got := s.Digest(); got == first || got != afresh() {
		t.Fatal("at the entry's expiry the digest still counts it")
	}
	now = time.Unix(soon.Expires, 0).Add(-time.Minute)
	if got := s.Digest(); got != first || got != afresh() {
		t.Fatal("with the clock gone back before the expiry, the digest does not count the entry again")
	}
}

// A digest stamp adopted by a state holding the same records serves as a
// digest it computed at the stamp's time would: while no entry it counts
// has expired, and not with the clock before the stamp. A state holding
// other records refuses it.
func TestAdoptedDigestHoldsAsAComputedOne(t *testing.T) {
	nw, recs, soon := expiringRecords(t)
	now := nw.Now
	clock := func() time.Time { return now }
	saved := directory.NewState(nw.ID, clock)
	mustApply(t, saved, recs...)
	others, entries, stamp := saved.HeldRecords()
	if len(others)+len(entries) != len(recs) || len(entries) != 2 || stamp.Digest != saved.Digest() {
		t.Fatalf("HeldRecords: %d others, %d entries, stamp %s; want %d records, 2 entries, the digest %s",
			len(others), len(entries), stamp.Digest.Short(), len(recs), saved.Digest().Short())
	}
	listed := map[directory.Hash]bool{}
	for _, h := range append(others, entries...) {
		listed[h] = true
	}
	isListed := func(h directory.Hash) bool { return listed[h] }
	afresh := func() directory.Hash {
		f := directory.NewState(nw.ID, clock)
		for _, r := range recs {
			f.Apply(r) // the expired entry is refused
		}
		return f.Digest()
	}

	now = nw.Now.Add(30 * time.Minute)
	s := directory.NewState(nw.ID, clock)
	mustApply(t, s, recs...)
	if !s.AdoptDigest(stamp, len(listed), isListed) {
		t.Fatal("a state holding the same records refused the stamp")
	}
	if s.Digest() != stamp.Digest || stamp.Digest != afresh() {
		t.Fatal("the adopted digest is not the records' digest")
	}
	now = time.Unix(soon.Expires, 0)
	if got := s.Digest(); got == stamp.Digest || got != afresh() {
		t.Fatal("at the entry's expiry the adopted digest still counts it")
	}

	now = nw.Now.Add(-time.Minute) // the clock went back since the stamp
	s = directory.NewState(nw.ID, clock)
	mustApply(t, s, recs...)
	s.AdoptDigest(directory.DigestStamp{Digest: directory.Hash{1}, At: stamp.At, Until: stamp.Until}, len(listed), isListed)
	if got := s.Digest(); got != afresh() {
		t.Fatal("a stamp from after the clock's time was used")
	}

	now = nw.Now
	fewer := directory.NewState(nw.ID, clock)
	mustApply(t, fewer, recs[:3]...)
	if fewer.AdoptDigest(stamp, len(listed), isListed) {
		t.Fatal("a state holding a record fewer adopted the stamp")
	}
}
