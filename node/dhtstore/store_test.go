package dhtstore

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestPutGetAcrossNodes: a record put by one of five nodes is found by every
// other; a higher seq put by yet another node replaces it on every node that
// held it; a rollback to the old seq is refused by each peer and by Put.
func TestPutGetAcrossNodes(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	nodes := newCluster(t, nw, 5, nil)
	ctx := ctxFor(t, 60*time.Second)

	e1 := nw.Entry(t, org, "asesoria", 1)
	if err := nodes[1].s.Put(ctx, e1); err != nil {
		t.Fatalf("put: %v", err)
	}
	id := slotID(t, e1)
	for i, n := range nodes {
		got, err := n.s.Get(ctx, id)
		if err != nil {
			t.Fatalf("node %d get: %v", i, err)
		}
		if got.Hash() != e1.Hash() {
			t.Fatalf("node %d got another record", i)
		}
	}

	// In a network this small every node is among the closest to any key,
	// so every node stores a copy; check each one's own copy directly.
	key := blindKey(t, nw.Key, e1)
	e2 := nw.Entry(t, org, "asesoria", 2)
	if err := nodes[3].s.Put(ctx, e2); err != nil {
		t.Fatalf("put seq 2: %v", err)
	}
	for i, n := range nodes {
		if i == 0 {
			continue
		}
		got, err := heldBy(ctx, nodes[0].s, n.h.ID(), key)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if s := entrySeq(t, got); s != 2 {
			t.Fatalf("node %d still holds seq %d after seq 2 was put", i, s)
		}
		if got, err := n.s.Get(ctx, id); err != nil || entrySeq(t, got) != 2 {
			t.Fatalf("node %d Get = %v, %v; want seq 2", i, got, err)
		}
	}

	// Rollback: each peer refuses seq 1 once it holds seq 2, and Put says
	// the slot holds something newer.
	old := record.MakePutRecord(key, directory.Seal(e1, nw.Key))
	for i, n := range nodes[1:] {
		if err := nodes[0].s.pm.PutValue(ctx, n.h.ID(), old); err == nil {
			t.Fatalf("node %d accepted seq 1 over seq 2", i+1)
		}
	}
	if err := nodes[4].s.Put(ctx, e1); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("put of seq 1 after seq 2 = %v, want ErrSuperseded", err)
	}
	if got, err := nodes[2].s.Get(ctx, id); err != nil || entrySeq(t, got) != 2 {
		t.Fatalf("after the rollback attempt Get = %v, %v; want seq 2", got, err)
	}

	// A node that never saw seq 2 learns from its peers that its seq 1 lost.
	o := testOptions(nw, newKeyring(1, nw.Key))
	o.Bootstrap = []peer.AddrInfo{nodes[0].info()}
	fresh := newNode(t, nil, o)
	waitFor(t, 20*time.Second, "the new node's routing table", func() bool { return fresh.s.RoutingTableSize() >= len(nodes) })
	if err := fresh.s.Put(ctx, e1); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("put of seq 1 from a node that never saw seq 2 = %v, want ErrSuperseded", err)
	}
}

// TestPutLoneNode: with nobody to store it, Put fails and says why.
func TestPutLoneNode(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	kr := newKeyring(1, nw.Key)
	n := newNode(t, nil, testOptions(nw, kr))
	err := n.s.Put(ctxFor(t, 10*time.Second), nw.Genesis)
	if !errors.Is(err, ErrNotStored) || !errors.Is(err, ErrNoPeers) {
		t.Fatalf("lone put = %v, want ErrNotStored and ErrNoPeers", err)
	}
	if !strings.Contains(err.Error(), "charter/1") {
		t.Fatalf("error %q does not name the slot", err)
	}
	// Only Ceiba records may be stored: the public DHT's /pk and /ipns
	// namespaces are gone.
	if err := n.s.dht.Validator.Validate("/pk/anything", []byte("x")); err == nil {
		t.Fatal("the DHT accepts /pk records")
	}
}

// TestPutNoPeerAccepts: peers are connected, but none can verify the record
// (they lack this epoch's key), so none stores it. kad-dht's PutValue
// returns nil here; Put must not.
func TestPutNoPeerAccepts(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	nodes := newCluster(t, nw, 3, func(i int, o *Options) {
		if i > 0 {
			o.Keyring = newKeyring(1, directory.NewReadKey()).get
		}
	})
	err := nodes[0].s.Put(ctxFor(t, 20*time.Second), nw.Genesis)
	if !errors.Is(err, ErrNotStored) {
		t.Fatalf("put nobody could verify = %v, want ErrNotStored", err)
	}
	t.Logf("error as the caller sees it: %v", err)
}

// TestDefaultAddressPolicy: without AllowPrivateAddrs a node neither
// announces its loopback addresses in provider records nor would dial ones
// it is told about.
func TestDefaultAddressPolicy(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	o := testOptions(nw, newKeyring(1, nw.Key))
	o.AllowPrivateAddrs = false
	n := newNode(t, dssync.MutexWrap(ds.NewMapDatastore()), o)
	if got := n.s.dht.FilteredAddrs(); len(got) != 0 {
		t.Fatalf("a public-policy node on 127.0.0.1 announces %v", got)
	}
	other := newHost(t)
	f := queryFilter(n.h, false)
	if f(nil, peer.AddrInfo{ID: other.ID(), Addrs: other.Addrs()}) {
		t.Fatal("query filter would dial an unconnected peer at a loopback address")
	}
	if !queryFilter(n.h, true)(nil, peer.AddrInfo{ID: other.ID(), Addrs: other.Addrs()}) {
		t.Fatal("with AllowPrivateAddrs the query filter refuses a loopback peer")
	}
}
