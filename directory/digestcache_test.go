package directory_test

import (
	"runtime"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// The digest is kept while nothing changes, until the first entry it
// counts expires (at 100,000 entries computing it takes 60 ms, and every
// status request asks for it), and it is never stale: at the entry's
// expiry, and with the clock gone back before it, it is what a state
// holding the same records computes afresh.
func TestDigestKeptUntilAnEntryExpires(t *testing.T) {
	nw := dirtest.New(t, 1, 1)
	org := dirtest.MustIdentity(t)
	soon := dirtest.SampleEntry("pronto", 1, nw.Now)
	soon.Expires = nw.Now.Add(time.Hour).Unix()
	recs := []*directory.Record{nw.Genesis, nw.Admit(t, org, "Colectivo"), nw.Entry(t, org, "asesoria", 1), nw.Sign(t, soon, org)}
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
