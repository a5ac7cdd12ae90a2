package dhtstore

import (
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestRendezvous: two nodes that know only a common bootstrap peer find each
// other through their network's rendezvous key; a node of another network
// on the same DHT does not find them, nor does a node that holds only the
// key before a rotation (a revoked device) find the nodes that rotated.
func TestRendezvous(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	boot := newNode(t, nil, testOptions(nw, newKeyring(1, nw.Key)))
	join := func(net *dirtest.Network) *testNode {
		o := testOptions(net, newKeyring(1, net.Key))
		o.Bootstrap = []peer.AddrInfo{boot.info()}
		o.AdvertiseInterval = time.Hour // the loop advertises as soon as there are peers
		return newNode(t, nil, o)
	}
	a, c := join(nw), join(nw)
	stranger := join(dirtest.New(t, 3, 2))
	// Two nodes that rotated to epoch 2 (they keep epoch 1's key, as
	// every node does, to open older records).
	key2 := directory.NewReadKey()
	rotated := func() *testNode {
		o := testOptions(nw, newKeyring(1, nw.Key))
		o.Keyring = func() directory.Keyring { return directory.Keyring{1: nw.Key, 2: key2} }
		o.Bootstrap = []peer.AddrInfo{boot.info()}
		o.AdvertiseInterval = time.Hour
		return newNode(t, nil, o)
	}
	r1, r2 := rotated(), rotated()

	find := func(n *testNode) map[peer.ID]peer.AddrInfo {
		found := map[peer.ID]peer.AddrInfo{}
		ch, err := n.s.FindPeers(ctxFor(t, 10*time.Second))
		if err != nil {
			return found
		}
		for ai := range ch {
			found[ai.ID] = ai
		}
		return found
	}
	waitFor(t, 30*time.Second, "a and c to find each other", func() bool {
		fa, fc := find(a), find(c)
		return len(fa[c.h.ID()].Addrs) > 0 && len(fc[a.h.ID()].Addrs) > 0
	})
	waitFor(t, 30*time.Second, "the rotated nodes to find each other", func() bool {
		f1, f2 := find(r1), find(r2)
		return len(f1[r2.h.ID()].Addrs) > 0 && len(f2[r1.h.ID()].Addrs) > 0
	})
	// Each rotated node advertised under epoch 2's key only: the nodes
	// holding epoch 1's key alone find neither, and neither finds them.
	for _, n := range []*testNode{a, c} {
		for id := range find(n) {
			if id == r1.h.ID() || id == r2.h.ID() {
				t.Error("a node holding only the key before the rotation found a node that rotated")
			}
		}
	}
	for id := range find(r1) {
		if id == a.h.ID() || id == c.h.ID() {
			t.Error("a rotated node found a node still on the key before")
		}
	}
	got := find(a)
	if _, ok := got[a.h.ID()]; ok {
		t.Error("FindPeers returned the node itself")
	}
	if _, ok := got[boot.h.ID()]; ok {
		t.Error("FindPeers returned the bootstrap peer, which never advertised")
	}
	if _, ok := got[stranger.h.ID()]; ok {
		t.Error("a node of another network showed up in this network's rendezvous")
	}
	waitFor(t, 10*time.Second, "the stranger's routing table", func() bool { return stranger.s.RoutingTableSize() > 0 })
	ch, err := stranger.s.FindPeers(ctxFor(t, 10*time.Second))
	if err != nil {
		t.Fatalf("stranger find peers: %v", err)
	}
	f := map[peer.ID]bool{}
	for ai := range ch {
		f[ai.ID] = true
	}
	if f[a.h.ID()] || f[c.h.ID()] {
		t.Errorf("the other network's node found this network's nodes")
	}
	// The key rotates daily and differs between read keys.
	day := nw.Now
	if RendezvousCID(nw.Key, day).Equals(RendezvousCID(nw.Key, day.AddDate(0, 0, 1))) {
		t.Error("rendezvous key does not change with the day")
	}
	if RendezvousCID(nw.Key, day).Equals(RendezvousCID(key2, day)) {
		t.Error("rendezvous key does not change with the read key")
	}
}
