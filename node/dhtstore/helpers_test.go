package dhtstore

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
)

// testKeyring is a node's keyring that a test can grow, as a node's does
// when it opens an epoch's key package.
type testKeyring struct {
	mu sync.Mutex
	kr directory.Keyring
}

func newKeyring(epoch uint64, k directory.ReadKey) *testKeyring {
	return &testKeyring{kr: directory.Keyring{epoch: k}}
}

func (k *testKeyring) get() directory.Keyring {
	k.mu.Lock()
	defer k.mu.Unlock()
	return maps.Clone(k.kr)
}

func (k *testKeyring) add(epoch uint64, key directory.ReadKey) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.kr[epoch] = key
}

type testNode struct {
	h  host.Host
	s  *Store
	kr *testKeyring
}

func (n *testNode) info() peer.AddrInfo { return peer.AddrInfo{ID: n.h.ID(), Addrs: n.h.Addrs()} }

// newHost is a TCP-only host on 127.0.0.1: the real stack, minus transports
// these tests do not need.
func newHost(t *testing.T) host.Host {
	t.Helper()
	h, err := libp2p.New(
		libp2p.NoTransports,
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"),
		libp2p.DisableRelay(),
		libp2p.DisableMetrics(),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// testOptions are what every test node shares: loopback addresses allowed
// (the explicit opt-in a demo or LAN network makes), no automatic
// advertising unless a test turns it on, quick background checks.
func testOptions(nw *dirtest.Network, kr *testKeyring) Options {
	return Options{
		Network:           nw.ID,
		Keyring:           kr.get,
		Now:               func() time.Time { return nw.Now },
		AllowPrivateAddrs: true,
		AdvertiseInterval: -1,
		CheckInterval:     100 * time.Millisecond,
		RequestTimeout:    5 * time.Second,
		Logger:            slog.New(slog.DiscardHandler),
		Authority:         everyone{},
	}
}

// everyone is the Authority of the tests that are about something other
// than the storage policy: they sign with organizations they do not admit
// in any directory state, and every one of them counts as a member.
// quota_test.go tests the policy with a real one.
type everyone struct{}

func (everyone) Role(directory.PublicKey) Role { return RolePublisher }
func (everyone) MaxRecordBytes() int           { return directory.MaxRecordBytes }

// everyoneUpTo is everyone under a charter whose max_record_bytes is max.
type everyoneUpTo int

func (everyoneUpTo) Role(directory.PublicKey) Role { return RolePublisher }
func (m everyoneUpTo) MaxRecordBytes() int         { return int(m) }

func newNode(t *testing.T, store ds.Batching, opts Options) *testNode {
	t.Helper()
	h := newHost(t)
	if store == nil {
		store = dssync.MutexWrap(ds.NewMapDatastore())
	}
	s, err := New(h, store, opts)
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-in first-out: the store closes before its host.
	t.Cleanup(func() { s.Close() })
	return &testNode{h: h, s: s}
}

// newCluster starts n nodes of nw holding the epoch-1 key; every node but
// the first knows only the first as bootstrap peer. It returns once every
// routing table holds all the other nodes.
func newCluster(t *testing.T, nw *dirtest.Network, n int, mod func(i int, o *Options)) []*testNode {
	t.Helper()
	var nodes []*testNode
	for i := range n {
		kr := newKeyring(1, nw.Key)
		o := testOptions(nw, kr)
		if i > 0 {
			o.Bootstrap = []peer.AddrInfo{nodes[0].info()}
		}
		if mod != nil {
			mod(i, &o)
		}
		node := newNode(t, nil, o)
		node.kr = kr
		nodes = append(nodes, node)
	}
	waitFor(t, 30*time.Second, "full routing tables", func() bool {
		for _, node := range nodes {
			if node.s.RoutingTableSize() < n-1 {
				return false
			}
		}
		return true
	})
	return nodes
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), d)
	t.Cleanup(cancel)
	return ctx
}

func slotID(t *testing.T, r *directory.Record) directory.SlotID {
	t.Helper()
	slot, err := r.Slot()
	if err != nil {
		t.Fatal(err)
	}
	return directory.SlotIDOf(slot)
}

// listed is r's line in its signer's manifest.
func listed(t *testing.T, r *directory.Record) directory.SlotHead {
	t.Helper()
	return directory.SlotHead{Slot: slotID(t, r), Head: directory.HeadOf(r.Hash())}
}

func blindKey(t *testing.T, k directory.ReadKey, r *directory.Record) string {
	t.Helper()
	return directory.BlindSlot(k, slotID(t, r))
}

// heldBy asks peer p directly what it stores under key, bypassing lookups,
// so a test sees each node's own copy.
func heldBy(ctx context.Context, from *Store, p peer.ID, key string) (*directory.Record, error) {
	rec, _, err := from.pm.GetValue(ctx, p, key)
	if err != nil {
		return nil, err
	}
	if rec == nil || rec.GetValue() == nil {
		return nil, fmt.Errorf("peer %s holds nothing under %s", p.ShortString(), short(key))
	}
	return from.val.open(key, rec.GetValue())
}

func entrySeq(t *testing.T, r *directory.Record) uint64 {
	t.Helper()
	b, err := r.DecodeBody()
	if err != nil {
		t.Fatal(err)
	}
	e, ok := b.(*directory.Entry)
	if !ok {
		t.Fatalf("record is a %s, not an entry", r.Type)
	}
	return e.Seq
}

// putAll puts recs from the given nodes in turn, several at once.
func putAll(t *testing.T, ctx context.Context, nodes []*testNode, recs []*directory.Record) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, len(recs))
	sem := make(chan struct{}, 8)
	for i, r := range recs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			errs[i] = nodes[i%len(nodes)].s.Put(ctx, r)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("put record %d (%s): %v", i, recs[i].Type, err)
		}
	}
}
