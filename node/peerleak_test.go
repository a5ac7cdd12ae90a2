package node

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// Keyless peers connect from fresh peer IDs and are cut by admission.
// Each used to leave an entry in the syncer's peer map (made when the
// connection opened, to sync with it) that nothing ever deleted. Found in
// review (session 39).
func TestKeylessPeersLeaveNoSyncState(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	a := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	ref := &reference{t: t, nw: nw}
	ref.publish(a, nw.Genesis)
	count := func() int {
		a.sync.mu.Lock()
		defer a.sync.mu.Unlock()
		return len(a.sync.peers)
	}
	before := count()
	const n = 10
	var wg sync.WaitGroup
	for range n {
		h := hostileHost(t)
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			h.Connect(ctx, peer.AddrInfo{ID: a.Host().ID(), Addrs: a.Host().Addrs()})
			cancel()
			h.Close()
		})
	}
	wg.Wait()
	waitFor(t, 20*time.Second, "every keyless peer to be cut", func() bool { return len(a.Host().Network().Peers()) == 0 })
	waitFor(t, 15*time.Second, "the keyless peers' sync state to go", func() bool { return count() <= before })
	t.Logf("syncer.peers: %d before, %d after %d keyless peers came and were cut", before, count(), n)
}

// A peer that has gone leaves no sync state, but a session it finished
// still counts in Status while it is recent: a peer reached over a relay
// circuit that closed since is still one the node synced with (the NAT
// test through a relay waits for it, and forgetting it there made that
// test time out).
func TestPeerThatWentStillCountsAsSyncedWith(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	c := newCluster(t, nw, 2, []*directory.Identity{nw.Stewards[0], nw.Stewards[1]}, func(_ int, cfg *Config) {
		cfg.SyncInterval = time.Minute
	})
	a, b := c.nodes[0], c.nodes[1]
	ref := &reference{t: t, nw: nw}
	ref.publish(a, nw.Genesis)
	ref.publish(b, nw.Genesis)
	if _, err := c.mn.ConnectPeers(a.Host().ID(), b.Host().ID()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "a to finish a session with b", func() bool { return a.Status().LastSyncPeers == 1 })
	if err := c.mn.UnlinkPeers(a.Host().ID(), b.Host().ID()); err != nil {
		t.Fatal(err)
	}
	c.mn.DisconnectPeers(a.Host().ID(), b.Host().ID())
	waitFor(t, 10*time.Second, "b's sync state to go", func() bool {
		a.sync.mu.Lock()
		defer a.sync.mu.Unlock()
		return a.sync.peers[b.Host().ID()] == nil
	})
	if got := a.Status().LastSyncPeers; got != 1 {
		t.Fatalf("a counts %d peers synced with recently, want 1: b went, but its session is a minute old at most", got)
	}
}
