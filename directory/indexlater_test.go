package directory_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// The index takes what Apply changed after the fact (so that a node lets a
// record on before indexing it), but a search, a count or a snapshot never
// shows the index behind the state.
func TestIndexTakesChangesBeforeAnyRead(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	st := nw.State()
	org := dirtest.MustIdentity(t)
	mustApply(t, st, nw.Genesis)
	mustApply(t, st, nw.Admit(t, org, "Colectivo Ejemplo"))
	found := func(id string) bool {
		for _, r := range st.Search(directory.Query{Text: "asesoría"}) {
			if r.Entry.ID == id {
				return true
			}
		}
		return false
	}

	mustApply(t, st, nw.Entry(t, org, "servicio-1", 1))
	if n := directory.IndexWaitingForTest(st); n != 1 {
		t.Fatalf("after applying an entry the index has %d changes waiting, want 1 (it indexed at once)", n)
	}
	if !found("servicio-1") {
		t.Fatal("a search right after Apply does not find the entry")
	}
	if n := directory.IndexWaitingForTest(st); n != 0 {
		t.Fatalf("a search left %d changes waiting", n)
	}

	// A tombstone, then a new version of the same slot, both waiting: the
	// index takes them in order.
	tomb := dirtest.SampleEntry("servicio-1", 2, nw.Now)
	tomb.Deleted, tomb.Service = true, nil
	mustApply(t, st, nw.Sign(t, tomb, org))
	mustApply(t, st, nw.Entry(t, org, "servicio-1", 3))
	mustApply(t, st, nw.Entry(t, org, "servicio-2", 1))
	if got := st.Stats().Entries; got != 2 {
		t.Fatalf("Stats counts %d entries, want 2", got)
	}
	if !found("servicio-1") || !found("servicio-2") {
		t.Fatal("the entries put again and put new are not found")
	}

	// A revocation takes the organization's entries out of search before
	// the index has been told.
	snapBefore := st.EncodeIndexSnapshot()
	mustApply(t, st, nw.RevokeBy(t, org.Public()))
	if n := directory.IndexWaitingForTest(st); n != 2 {
		t.Fatalf("after the revocation %d changes wait, want the 2 removals", n)
	}
	if found("servicio-1") || found("servicio-2") {
		t.Fatal("a search right after the revocation still finds the revoked organization's entries")
	}
	if got := st.Stats().Entries; got != 0 {
		t.Fatalf("Stats counts %d entries after the revocation, want 0", got)
	}
	if snap := st.EncodeIndexSnapshot(); len(snap) >= len(snapBefore) {
		t.Fatalf("the index snapshot after the revocation (%d bytes) is not smaller than before (%d)", len(snap), len(snapBefore))
	}
}

// A state applying many records without anyone searching indexes them as
// it goes, a batch at a time, rather than holding them all.
func TestIndexChangesWaitingAreBounded(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	st := nw.State()
	var orgs []*directory.Identity
	mustApply(t, st, nw.Genesis)
	for i := range 4 {
		org := dirtest.MustIdentity(t)
		orgs = append(orgs, org)
		mustApply(t, st, nw.Admit(t, org, fmt.Sprintf("Colectivo %d", i)))
	}
	most := 0
	for i := range 600 {
		mustApply(t, st, nw.Entry(t, orgs[i%len(orgs)], fmt.Sprintf("servicio-%d", i), 1))
		most = max(most, directory.IndexWaitingForTest(st))
	}
	if most > 256 {
		t.Fatalf("%d changes waited for the index at once; want at most 256", most)
	}
	if most < 2 {
		t.Fatalf("at most %d changes waited: the index took each at once", most)
	}
	if got := st.Stats().Entries; got != 600 {
		t.Fatalf("Stats counts %d entries, want 600", got)
	}
}

// Searches running while records are applied (the race detector checks
// the index's own lock) find every entry once they are done.
func TestSearchWhileApplying(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	st := nw.State()
	org := dirtest.MustIdentity(t)
	mustApply(t, st, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"))
	recs := make([]*directory.Record, 200)
	for i := range recs {
		recs[i] = nw.Entry(t, org, fmt.Sprintf("servicio-%d", i), 1)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				st.Search(directory.Query{Text: "asesoría"})
				st.FlushIndex()
			}
		})
	}
	stop := sync.OnceFunc(func() { close(done); wg.Wait() })
	defer stop() // also when an apply fails
	mustApply(t, st, recs...)
	stop()
	if got := len(st.Search(directory.Query{Text: "asesoría", Limit: directory.MaxLimit})); got != min(200, directory.MaxLimit) {
		t.Fatalf("search finds %d entries after the applies, want %d", got, min(200, directory.MaxLimit))
	}
}

// Applying a record does not wait for a search in progress: the index's
// changes wait aside, and the search that holds the index finishes on
// its own time. (Before, every apply of an entry took the index's write
// lock, and so every hop waited for whatever search was running.)
func TestApplyDoesNotWaitForASearch(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	st := nw.State()
	org := dirtest.MustIdentity(t)
	mustApply(t, st, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"))
	release := directory.HoldIndexForTest(st)
	defer release()
	applied := make(chan error, 1)
	go func() {
		_, err := st.Apply(nw.Entry(t, org, "servicio-1", 1))
		applied <- err
	}()
	select {
	case err := <-applied:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Apply of an entry waited for the search holding the index")
	}
	release()
	if got := st.Stats().Entries; got != 1 {
		t.Fatalf("Stats counts %d entries once the search ended, want 1", got)
	}
}
