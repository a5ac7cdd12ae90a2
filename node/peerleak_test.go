package node

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

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
	for range n {
		h := hostileHost(t)
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		h.Connect(ctx, peer.AddrInfo{ID: a.Host().ID(), Addrs: a.Host().Addrs()})
		cancel()
		h.Close()
	}
	waitFor(t, 20*time.Second, "every keyless peer to be cut", func() bool { return len(a.Host().Network().Peers()) == 0 })
	waitFor(t, 15*time.Second, "the keyless peers' sync state to go", func() bool { return count() <= before })
	t.Logf("syncer.peers: %d before, %d after %d keyless peers came and were cut", before, count(), n)
}
