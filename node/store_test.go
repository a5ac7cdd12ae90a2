package node

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/ceiba-network/ceiba/directory"
)

// The start decrypts stored records in place (directory.OpenVerified), so
// what the record store reads must be the reader's own bytes: changing
// them changes nothing stored. The node's own pebble store is read
// straight from pebble, whose iterator reuses its buffers; a datastore a
// caller hands the node need not return copies (a MapDatastore does not).
func TestStoredRecordReadsAreTheReadersOwn(t *testing.T) {
	pebble, _, err := openStore(t.TempDir(), slog.New(slog.DiscardHandler), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer pebble.Close()
	for _, c := range []struct {
		name   string
		ds     datastore.Batching
		direct bool
	}{
		{"the node's pebble store", pebble, true},
		{"a caller's datastore", dssync.MutexWrap(datastore.NewMapDatastore()), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := newRecordStore(c.ds)
			if direct := st.db != nil; direct != c.direct {
				t.Fatalf("read straight from pebble: %v, want %v", direct, c.direct)
			}
			want := [][]byte{[]byte("sealed record bytes"), []byte("another record's bytes")}
			hs := []directory.Hash{{1, 2, 3}, {4, 5, 6}}
			for i, h := range hs {
				if err := st.put(t.Context(), h, bytes.Clone(want[i])); err != nil {
					t.Fatal(err)
				}
			}
			var read [][]byte
			err := st.each(t.Context(), func(r storedRecord) { read = append(read, r.sealed) }, func(datastore.Key) {})
			if err != nil {
				t.Fatal(err)
			}
			if len(read) != len(hs) {
				t.Fatalf("each read %d records, want %d", len(read), len(hs))
			}
			// Changed only once every record is read: a reused buffer
			// would show in the records read after it.
			for i := range read {
				clear(read[i])
			}
			for i, h := range hs {
				if got, err := st.sealed(t.Context(), h); err != nil || !bytes.Equal(got, want[i]) {
					t.Fatalf("after changing what each read, the store holds %q (%v), want %q", got, err, want[i])
				}
			}
			h := hs[0]
			got, err := st.sealed(t.Context(), h)
			if err != nil {
				t.Fatal(err)
			}
			clear(got)
			if got, err := st.sealed(t.Context(), h); err != nil || !bytes.Equal(got, want[0]) {
				t.Fatalf("after changing what sealed read, the store holds %q (%v), want %q", got, err, want[0])
			}
		})
	}
}

// The start reads the node's pebble store straight from pebble; it must
// read exactly what go-datastore's query over the same store reads: every
// record under recordsPrefix, every other key there reported as bad (so
// the start removes it), nothing from elsewhere in the datastore.
func TestStoreReadStraightFromPebbleReadsWhatTheQueryReads(t *testing.T) {
	ds, _, err := openStore(t.TempDir(), slog.New(slog.DiscardHandler), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	defer ds.Close()
	ctx := t.Context()
	direct := newRecordStore(ds)
	if direct.db == nil {
		t.Fatal("the node's store is not read straight from pebble")
	}
	for i := range 300 {
		h := directory.Hash{byte(i), byte(i >> 8), 7}
		if err := direct.put(ctx, h, []byte(fmt.Sprintf("record %d", i))); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"/records/zz", "/records/" + strings.Repeat("0", 63), "/records/0a/0b", "/dht/providers/x", "/recordsx", "/recordt/y", "/r"} {
		if err := ds.Put(ctx, datastore.NewKey(k), []byte("not a record")); err != nil {
			t.Fatal(err)
		}
	}
	read := func(st *recordStore) (records map[directory.Hash]string, bad []string) {
		records = map[directory.Hash]string{}
		err := st.each(ctx, func(r storedRecord) { records[r.hash] = string(r.sealed) }, func(k datastore.Key) { bad = append(bad, k.String()) })
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(bad)
		return records, bad
	}
	gotRecords, gotBad := read(direct)
	wantRecords, wantBad := read(&recordStore{ds: direct.ds})
	if len(gotRecords) != 300 || !maps.Equal(gotRecords, wantRecords) {
		t.Fatalf("read straight from pebble: %d records, the query: %d (equal: %v); want 300 each", len(gotRecords), len(wantRecords), maps.Equal(gotRecords, wantRecords))
	}
	if !slices.Equal(gotBad, wantBad) || len(gotBad) != 3 {
		t.Fatalf("bad keys read straight from pebble %q, by the query %q; want the three under /records", gotBad, wantBad)
	}
}

// A record's key names its hash in hex, after a "/" as the datastore
// gives it, or bare as the store's repair reads it from a table with the
// prefix cut off; anything else is no record's key.
func TestRecordKeysParse(t *testing.T) {
	h := directory.Hash{0xca, 0xfe, 31: 0x01}
	hexed := fmt.Sprintf("%x", h[:])
	for _, k := range []string{"/" + hexed, hexed} {
		if got, ok := parseRecordKey(k); !ok || got != h {
			t.Errorf("parseRecordKey(%q) = %x, %v; want %x", k, got, ok, h)
		}
		if got, ok := parseRecordKey([]byte(k)); !ok || got != h {
			t.Errorf("parseRecordKey(bytes %q) = %x, %v; want %x", k, got, ok, h)
		}
	}
	for _, k := range []string{"", "/", "//" + hexed, "/" + hexed[1:], hexed + "0", "/" + hexed[:62] + "zz", "/a/b"} {
		if _, ok := parseRecordKey(k); ok {
			t.Errorf("parseRecordKey(%q) took it for a record's key", k)
		}
	}
}
