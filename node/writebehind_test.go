package node

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A record taken by gossip is written behind the validator (writebehind.go):
// searchable and announced at once, on disk soon after, and on disk after a
// Close that came first, with the version it superseded gone.
func TestGossipedRecordIsWrittenBehind(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	dir := t.TempDir()
	n, err := New(t.Context(), testConfig(t, nw, nw.Stewards[0], dir))
	if err != nil {
		t.Fatal(err)
	}
	closed := false
	defer func() {
		if !closed {
			n.Close()
		}
	}()
	mustPublish(t, n, nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo Ejemplo"))
	events, cancel := n.Subscribe()
	defer cancel()

	v1 := entryRec(t, nw, org, "asesoria", 1)
	if _, v, _, err := n.ingestGossip(directory.Seal(v1, nw.Key), "", true); v != accepted {
		t.Fatalf("version 1 was not accepted: %v", err)
	}
	if len(n.State().Search(directory.Query{Text: "asesoria"})) != 1 {
		t.Fatal("a record taken by gossip is not searchable as soon as it is taken")
	}
	deadline := time.After(10 * time.Second)
	for waiting := true; waiting; {
		select {
		case ev := <-events:
			waiting = ev.Kind != EventRecord || ev.Hash != v1.Hash()
		case <-deadline:
			t.Fatal("no event for version 1")
		}
	}
	waitFor(t, 10*time.Second, "version 1 to be written behind", func() bool {
		_, err := n.store.ds.Get(context.Background(), recordKey(v1.Hash()))
		return err == nil
	})

	// Version 2 supersedes it; Close comes before the writer's round
	// can be counted on, and must leave version 2 on disk.
	v2 := entryRec(t, nw, org, "asesoria", 2)
	if _, v, _, err := n.ingestGossip(directory.Seal(v2, nw.Key), "", true); v != accepted {
		t.Fatalf("version 2 was not accepted: %v", err)
	}
	closed = true
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	again := startNode(t, testConfig(t, nw, nw.Stewards[0], dir))
	if !again.State().Has(v2.Hash()) {
		t.Fatal("version 2, taken by gossip just before Close, is not in the store after a restart")
	}
	if again.State().Has(v1.Hash()) {
		t.Fatal("version 1 came back after a restart: the superseded version was kept in the pool")
	}
}

// Found in review (session 39): the write-behind round deleted what a
// gossiped record had pushed out of the pool without asking whether the
// state held it again. Here a charter (one side of a fork) taken by gossip
// sets an admission aside; the other side links while the charter's write
// waits (a slow disk), and the admission is taken back. The round must not
// then delete it: sync would stop offering it, and the next start would
// not have it.
func TestRecordTakenBackWhileWrittenBehindStaysOnDisk(t *testing.T) {
	f := dirtest.NewFork(t)
	nw, withD, withE, byD := f.Network, f.WithD, f.WithE, f.ByD
	store := &gatedStore{Batching: dssync.MutexWrap(datastore.NewMapDatastore()),
		gates: map[datastore.Key]chan struct{}{}, reached: map[datastore.Key]chan struct{}{}}
	n := newCluster(t, nw, 1, []*directory.Identity{nw.Stewards[0]}, func(_ int, c *Config) { c.Datastore = store }).nodes[0]
	withEKey := recordsPrefix.Child(recordKey(withE.Hash()))
	_, release := store.gate(withEKey)
	t.Cleanup(release)
	for _, r := range []*directory.Record{nw.Genesis, nw.FirstEpoch, byD} {
		if _, _, err := n.accept(r, "", ViaSync); err != nil {
			t.Fatal(err)
		}
	}
	a, _, err := n.acceptSealed(withE, nil, "", ViaGossip)
	if err != nil {
		t.Fatal(err)
	}
	if n.State().Has(byD.Hash()) || !slices.Contains(a.Dropped, byD.Hash()) {
		t.Fatal("the admission waiting for version 2 was not set aside by one side of the fork")
	}
	if _, _, err := n.accept(withD, "", ViaSync); err != nil {
		t.Fatal(err)
	}
	if !n.State().Has(byD.Hash()) {
		t.Fatal("the admission was not taken back once the other side linked")
	}
	release()
	waitFor(t, 10*time.Second, "the charter's write behind", func() bool {
		ok, _ := n.root.Has(context.Background(), withEKey)
		n.mu.Lock()
		defer n.mu.Unlock()
		return ok && n.inflight == 0 // the round's drop is done too
	})
	n.mu.Lock()
	_, booked := n.stored[byD.Hash()]
	n.mu.Unlock()
	onDisk, err := n.root.Has(context.Background(), recordsPrefix.Child(recordKey(byD.Hash())))
	if !n.State().Has(byD.Hash()) || !booked || err != nil || !onDisk {
		t.Fatalf("the state holds the admission: %v; the node's books: %v; on disk: %v (%v)", n.State().Has(byD.Hash()), booked, onDisk, err)
	}
}
