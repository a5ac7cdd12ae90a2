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
// on the same DHT does not find them.
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
	// The key rotates daily and differs between networks.
	day := nw.Now
	if RendezvousCID(nw.ID, day).Equals(RendezvousCID(nw.ID, day.AddDate(0, 0, 1))) {
		t.Error("rendezvous key does not change with the day")
	}
	var other directory.NetworkID
	if RendezvousCID(nw.ID, day).Equals(RendezvousCID(other, day)) {
		t.Error("rendezvous key does not depend on the network")
	}
}
