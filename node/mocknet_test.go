package node

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A hundred nodes in one process on libp2p's mock network, each connected
// to a few others (a ring plus random chords, so the graph is connected but
// far from complete). Records are published on scattered nodes, including
// an entry before the membership that admits its publisher; every node
// must reach the same digest as a reference state holding all records.
//
// CEIBA_MOCKNET_NODES overrides the node count (at least 100 in make test).
func TestMocknetHundredNodesConverge(t *testing.T) {
	size := 100
	if s := os.Getenv("CEIBA_MOCKNET_NODES"); s != "" {
		size, _ = strconv.Atoi(s)
	}
	nw := dirtest.New(t, 3, 2)
	orgs := []*directory.Identity{dirtest.MustIdentity(t), dirtest.MustIdentity(t)}

	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	nodes := make([]*Node, size)
	// Every node runs under an admitted key, as in a real network (a node
	// serves sync only to keys its directory admits): ten organizations,
	// ten nodes each.
	ids := make([]*directory.Identity, 10)
	for i := range ids {
		ids[i] = dirtest.MustIdentity(t)
	}
	for i := range nodes {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		cfg := testConfig(t, nw, ids[i%len(ids)], "")
		cfg.Host = h
		cfg.Datastore = dssync.MutexWrap(datastore.NewMapDatastore())
		cfg.SyncInterval = 2 * time.Second
		nodes[i] = startNode(t, cfg)
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	connect := func(i, j int) {
		if i == j {
			return
		}
		if _, err := mn.ConnectPeers(nodes[i].Host().ID(), nodes[j].Host().ID()); err != nil {
			t.Fatal(err)
		}
	}
	for i := range nodes {
		connect(i, (i+1)%size)
		connect(i, rng.IntN(size))
		connect(i, rng.IntN(size))
	}

	// Publications start once every node sees peers on the topic: what
	// is measured is how the directory spreads, not how fast a hundred
	// meshes form on a loaded machine.
	waitFor(t, 30*time.Second, "every node to have topic peers", func() bool {
		for _, n := range nodes {
			if len(n.govTopic().ListPeers()) < 2 {
				return false
			}
		}
		return true
	})

	ref := &reference{t: t, nw: nw}
	for i, id := range ids {
		ref.publish(nodes[i*7%size], nw.Admit(t, id, fmt.Sprintf("Nodo %d", i)))
	}
	start := time.Now()
	// An entry before its publisher's membership: pooled until admitted.
	ref.publish(nodes[size/2], entryRec(t, nw, orgs[1], "refugio", 1))
	ref.publish(nodes[0], nw.Genesis)
	ref.publish(nodes[size/4], nw.Admit(t, orgs[0], "Colectivo Uno"), nw.Admit(t, orgs[1], "Colectivo Dos"))
	for k := range 20 {
		ref.publish(nodes[rng.IntN(size)], entryRec(t, nw, orgs[k%2], fmt.Sprintf("servicio-%d", k), 1))
	}
	ref.publish(nodes[size-1], entryRec(t, nw, orgs[0], "servicio-0", 2))
	want := ref.digest()

	waitFor(t, 60*time.Second, fmt.Sprintf("%d nodes to reach the same digest", size), func() bool {
		return sameDigest(nodes, want)
	})
	t.Logf("%d nodes converged %s after the first publication", size, time.Since(start).Round(time.Millisecond))
	var gossip, sync int
	for _, n := range nodes {
		if got := len(n.State().Search(directory.Query{})); got != 21 {
			t.Fatalf("a node finds %d entries, want 21", got)
		}
		acc := n.Status().Accepted
		gossip += acc[ViaGossip]
		sync += acc[ViaSync]
	}
	t.Logf("records accepted: %d via gossip, %d via sync", gossip, sync)

	// Closing a hundred nodes must not hang on anything.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan struct{})
	go func() {
		for _, n := range nodes {
			n.Close()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("closing the nodes hung")
	}
}
