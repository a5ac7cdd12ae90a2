package node

import (
	"bytes"
	"log/slog"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/ceiba-network/ceiba/directory"
)

// The start decrypts stored records in place (directory.OpenVerified), so
// what the record store reads must be the reader's own bytes: changing
// them changes nothing stored. The node's own pebble store returns copies
// (which the store relies on, readsAreCopies); a datastore a caller hands
// the node need not, and the store copies what it reads from it.
func TestStoredRecordReadsAreTheReadersOwn(t *testing.T) {
	pebble, _, err := openStore(t.TempDir(), slog.New(slog.DiscardHandler), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer pebble.Close()
	for _, c := range []struct {
		name           string
		ds             datastore.Batching
		readsAreCopies bool
	}{
		{"the node's pebble store", pebble, true},
		{"a caller's datastore", dssync.MutexWrap(datastore.NewMapDatastore()), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := newRecordStore(c.ds)
			st.readsAreCopies = c.readsAreCopies
			want := []byte("sealed record bytes")
			h := directory.Hash{1, 2, 3}
			if err := st.put(t.Context(), h, bytes.Clone(want)); err != nil {
				t.Fatal(err)
			}
			err := st.each(t.Context(), func(r storedRecord) { clear(r.sealed) }, func(datastore.Key) {})
			if err != nil {
				t.Fatal(err)
			}
			got, err := st.sealed(t.Context(), h)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("after changing what each read, the store holds %q (%v), want %q", got, err, want)
			}
			clear(got)
			if got, err := st.sealed(t.Context(), h); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("after changing what sealed read, the store holds %q (%v), want %q", got, err, want)
			}
		})
	}
}
