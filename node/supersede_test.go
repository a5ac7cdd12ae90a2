package node

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// gatedStore holds chosen Puts until released, to stage interleavings of
// concurrent publications that a real disk produces only now and then.
type gatedStore struct {
	datastore.Batching
	mu      sync.Mutex
	gates   map[datastore.Key]chan struct{}
	reached map[datastore.Key]chan struct{}
}

func (g *gatedStore) gate(k datastore.Key) (reached <-chan struct{}, release func()) {
	g.mu.Lock()
	defer g.mu.Unlock()
	open, hit := make(chan struct{}), make(chan struct{})
	g.gates[k], g.reached[k] = open, hit
	var once sync.Once
	return hit, func() { once.Do(func() { close(open) }) }
}

func (g *gatedStore) Put(ctx context.Context, k datastore.Key, v []byte) error {
	g.mu.Lock()
	open, hit := g.gates[k], g.reached[k]
	g.mu.Unlock()
	if open != nil {
		close(hit)
		<-open
	}
	return g.Batching.Put(ctx, k, v)
}

// An acknowledged version stays on disk until the version that superseded
// it is there too. Staged: version 2's write finishes only after version 3
// was applied, and version 3's write is still pending when version 2 is
// acknowledged. Had the node deleted version 2 then (it was no longer the
// state's), a crash at that moment would leave neither on disk: an
// acknowledged record lost (seen once in TestPublishStormSurvivesKills).
func TestAcknowledgedVersionOutlivesPendingSuperseder(t *testing.T) {
	nw := dirtest.New(t, 1, 1)
	org := dirtest.MustIdentity(t)
	store := &gatedStore{Batching: dssync.MutexWrap(datastore.NewMapDatastore()),
		gates: map[datastore.Key]chan struct{}{}, reached: map[datastore.Key]chan struct{}{}}
	cfg := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfg.Datastore = store
	cfg.ExpireInterval = time.Second // the orphan sweep runs on this tick
	n := startNode(t, cfg)
	mustPublish(t, n, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"))
	v1, v2, v3 := entryRec(t, nw, org, "refugio", 1), entryRec(t, nw, org, "refugio", 2), entryRec(t, nw, org, "refugio", 3)
	mustPublish(t, n, v1)

	publish := func(r *directory.Record) <-chan error {
		done := make(chan error, 1)
		go func() { _, err := n.Publish(context.Background(), r); done <- err }()
		return done
	}
	key := func(r *directory.Record) datastore.Key { return recordsPrefix.Child(recordKey(r.Hash())) }
	reached2, release2 := store.gate(key(v2))
	t.Cleanup(release2) // before the node closes: a held write would keep it open
	done2 := publish(v2)
	waitChan(t, reached2, "version 2's write") // applied, its write under way
	reached3, release3 := store.gate(key(v3))
	t.Cleanup(release3)
	done3 := publish(v3)
	waitChan(t, reached3, "version 3's write") // applied (version 2 no longer the state's), write held
	release2()
	if err := waitErr(t, done2, "version 2's publication"); err != nil {
		t.Fatalf("publishing version 2: %v", err)
	}
	// Version 2 is acknowledged; version 3 is not on disk. A crash now
	// must find version 2.
	has := func(r *directory.Record) bool {
		ok, err := store.Batching.Has(context.Background(), key(r))
		return err == nil && ok
	}
	if !has(v2) {
		t.Fatal("acknowledged version 2 was deleted while version 3, which superseded it, was not on disk")
	}
	release3()
	if err := waitErr(t, done3, "version 3's publication"); err != nil {
		t.Fatalf("publishing version 3: %v", err)
	}
	// Once version 3 is durable, version 2 goes (and version 1 went when
	// version 2 was written).
	waitFor(t, 10*time.Second, "the superseded version to be deleted once its successor is on disk", func() bool {
		return !has(v2) && has(v3) && !has(v1)
	})
}

func waitChan(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s never came", what)
	}
}

func waitErr(t *testing.T, c <-chan error, what string) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s never returned", what)
		return nil
	}
}
