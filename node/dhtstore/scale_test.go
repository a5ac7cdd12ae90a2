package dhtstore

import (
	"fmt"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
)

// TestManyNodes runs 30 nodes in-process (mocknet), more than a Kademlia
// bucket (20), so records land on the peers closest to their blinded key
// rather than on everyone, and lookups must route to them.
func TestManyNodes(t *testing.T) {
	const n = 30
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	mn := mocknet.New()
	t.Cleanup(func() { mn.Close() })
	var hosts []*testNode
	for range n {
		h, err := mn.GenPeer()
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, &testNode{h: h})
	}
	if err := mn.LinkAll(); err != nil {
		t.Fatal(err)
	}
	for i, node := range hosts {
		o := testOptions(nw, newKeyring(1, nw.Key))
		if i > 0 {
			o.Bootstrap = []peer.AddrInfo{hosts[0].info()}
		}
		s, err := New(node.h, dssync.MutexWrap(ds.NewMapDatastore()), o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		node.s = s
	}
	waitFor(t, 60*time.Second, "routing tables to fill", func() bool {
		for _, node := range hosts {
			if node.s.RoutingTableSize() < 10 {
				return false
			}
		}
		return true
	})

	ctx := ctxFor(t, 90*time.Second)
	var recs []*directory.Record
	for i := range 10 {
		recs = append(recs, nw.Entry(t, org, fmt.Sprintf("servicio-%d", i), 1))
	}
	putAll(t, ctx, hosts, recs)

	for i, r := range recs {
		for _, j := range []int{(i + 7) % n, (i + 19) % n, (i + 29) % n} {
			got, err := hosts[j].s.Get(ctx, slotID(t, r))
			if err != nil || got.Hash() != r.Hash() {
				t.Fatalf("record %d from node %d: %v", i, j, err)
			}
		}
	}
	// Placement, not flooding: some nodes do not hold a given record.
	key := blindKey(t, nw.Key, recs[0])
	holders := 0
	for _, node := range hosts[1:] {
		if _, err := heldBy(ctx, hosts[0].s, node.h.ID(), key); err == nil {
			holders++
		}
	}
	t.Logf("record 0 is held by %d of %d other nodes", holders, n-1)
	if holders == 0 || holders == n-1 {
		t.Fatalf("record 0 held by %d of %d nodes; want some, not all", holders, n-1)
	}
}
