package node

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// indexFixture is a checkpointFixture with a few dozen entries more, so
// searches have something to rank.
func newIndexFixture(t *testing.T) *checkpointFixture {
	fx := newCheckpointFixture(t)
	org := dirtest.MustIdentity(t)
	fx.good = append(fx.good, fx.nw.Admit(t, org, "Red de Acogida"))
	for i := range 40 {
		e := dirtest.SampleEntry(fmt.Sprintf("acogida-%02d", i), 1, fx.nw.Now)
		e.Service.Name = fmt.Sprintf("Casa de acogida %02d", i)
		e.Service.Description = fmt.Sprintf("Alojamiento temporal y acompañamiento, plaza %d.", i)
		fx.good = append(fx.good, fx.nw.Sign(t, e, org))
	}
	return fx
}

var indexQueries = []directory.Query{
	{Text: "acogida"}, {Text: "alojamiento temporal"}, {Text: "asesoria"}, {Text: "plaza 7"},
	{Text: "acojida"}, {Category: "legal"}, {Language: "es"},
}

// startIn runs a node of the steward's identity on ds with its data
// directory at dir, where the index snapshot is kept.
func (fx *checkpointFixture) startIn(t *testing.T, ds datastore.Batching, dir string) *Node {
	cfg := testConfig(t, fx.nw, fx.nw.Stewards[0], dir)
	cfg.Datastore = ds
	return startNode(t, cfg)
}

func searches(n *Node) [][]directory.Result {
	var out [][]directory.Result
	for _, q := range indexQueries {
		out = append(out, n.State().Search(q))
	}
	return out
}

// A restart restores the search index from the snapshot its last Close
// wrote, and answers every search as the index built entry by entry did.
func TestIndexSnapshotUsedAtRestart(t *testing.T) {
	fx := newIndexFixture(t)
	ds, dir := fx.store(t, fx.good...), t.TempDir()
	n := fx.startIn(t, ds, dir)
	if n.indexRestored {
		t.Fatal("a first start restored an index no one wrote")
	}
	want := searches(n)
	n.Close()
	sealed, err := os.ReadFile(filepath.Join(dir, indexSnapshotFile))
	if err != nil {
		t.Fatalf("no index snapshot after a clean shutdown: %v", err)
	}
	for _, word := range []string{"acogida", "Alojamiento", "asesoria"} {
		if bytes.Contains(sealed, []byte(word)) {
			t.Fatalf("the stored snapshot shows the word %q in the clear", word)
		}
	}
	n = fx.startIn(t, ds, dir)
	if !n.indexRestored {
		t.Fatal("the restart did not restore the index from its snapshot")
	}
	if got := searches(n); !reflect.DeepEqual(got, want) {
		t.Fatalf("searches after the restart differ:\n got %v\nwant %v", got, want)
	}
}

// A snapshot that is damaged, another identity's, or older than the
// records stored after it (a kill -9 before the next checkpoint) is not
// used: the node indexes every entry, answers as a node that never had a
// snapshot, and writes a good one for the next start.
func TestIndexSnapshotNotUsedUnlessItMatches(t *testing.T) {
	fx := newIndexFixture(t)
	org := dirtest.MustIdentity(t)
	late := []*directory.Record{fx.nw.Admit(t, org, "Colectivo Tardío"), fx.nw.Entry(t, org, "tardia", 1)}
	ref := fx.start(t, fx.store(t, append(fx.good, late...)...))
	want := searches(ref)
	wantLate := ref.State().Search(directory.Query{Text: "asesoria"})
	ref.Close()

	// snapshotOf is the sealed snapshot a node of identity id writes at
	// Close on a store of recs.
	snapshotOf := func(t *testing.T, id *directory.Identity, recs ...*directory.Record) []byte {
		cfg := testConfig(t, fx.nw, id, t.TempDir())
		cfg.Datastore = fx.store(t, recs...)
		n := startNode(t, cfg)
		n.Close()
		b, err := os.ReadFile(filepath.Join(cfg.DataDir, indexSnapshotFile))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	me := fx.nw.Stewards[0]
	mine := snapshotOf(t, me, fx.good...)
	damaged := append([]byte(nil), mine...)
	damaged[len(damaged)/2] ^= 1
	for name, snap := range map[string][]byte{
		"damaged":                 damaged,
		"truncated":               mine[:len(mine)/3],
		"another identity's":      snapshotOf(t, dirtest.MustIdentity(t), append(fx.good, late...)...),
		"older than some records": mine,
	} {
		t.Run(name, func(t *testing.T) {
			ds, dir := fx.store(t, append(fx.good, late...)...), t.TempDir()
			path := filepath.Join(dir, indexSnapshotFile)
			if err := os.WriteFile(path, snap, 0o600); err != nil {
				t.Fatal(err)
			}
			n := fx.startIn(t, ds, dir)
			if n.indexRestored {
				t.Fatal("restored from a snapshot that does not match")
			}
			if got := searches(n); !reflect.DeepEqual(keysOf(got), keysOf(want)) {
				t.Fatalf("searches differ from a node that never had a snapshot:\n got %v\nwant %v", keysOf(got), keysOf(want))
			}
			if got := n.State().Search(directory.Query{Text: "asesoria"}); len(got) != len(wantLate) {
				t.Fatalf("%d results for the entries stored after the snapshot, want %d", len(got), len(wantLate))
			}
			// The node writes a snapshot that matches once it runs: a kill
			// -9 after that would not cost the next start the indexing
			// again. (What Close writes is put back to what the running
			// node wrote.)
			var written []byte
			waitFor(t, 10*time.Second, "the node to replace the snapshot it could not use", func() bool {
				b, err := os.ReadFile(path)
				written = b
				return err == nil && !bytes.Equal(b, snap)
			})
			n.Close()
			if err := os.WriteFile(path, written, 0o600); err != nil {
				t.Fatal(err)
			}
			if n = fx.startIn(t, ds, dir); !n.indexRestored {
				t.Fatal("the start after did not restore the snapshot written to replace the bad one")
			}
		})
	}
}

func keysOf(rss [][]directory.Result) [][]string {
	var out [][]string
	for _, rs := range rss {
		var ks []string
		for _, r := range rs {
			ks = append(ks, r.Key)
		}
		out = append(out, ks)
	}
	return out
}
