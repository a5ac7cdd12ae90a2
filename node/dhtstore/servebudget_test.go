package dhtstore

import (
	"sync"
	"testing"

	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// Found in review (session 39): a GET_VALUE of 65 bytes is answered with a
// sealed record of up to 256 KiB, and nothing bounded how often a peer
// could ask; a reader (who can compute slot keys) had a node send 1 GiB in
// 20 s, past the sync budget that bounds every other way of pulling
// records. Each answer is now drawn from the asker's budget
// (Options.ChargeServed; the node passes its sync budget): here one of 3
// answers, and a peer with budget left is still served.
func TestGetValueIsChargedToTheAsker(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	var mu sync.Mutex
	left := map[peer.ID]int{}
	charged := map[peer.ID]int{}
	o := testOptions(nw, newKeyring(1, nw.Key))
	o.ChargeServed = func(p peer.ID, n int) bool {
		mu.Lock()
		defer mu.Unlock()
		charged[p] += n
		if left[p] < n {
			return false
		}
		left[p] -= n
		return true
	}
	srv := newNode(t, nil, o)
	greedy, other := newNode(t, nil, testOptions(nw, newKeyring(1, nw.Key))), newNode(t, nil, testOptions(nw, newKeyring(1, nw.Key)))
	for _, p := range []*testNode{greedy, other} {
		if err := p.h.Connect(ctxFor(t, 10e9), srv.info()); err != nil {
			t.Fatal(err)
		}
	}
	r := nw.Entry(t, org, "asesoria", 1)
	key := blindKey(t, nw.Key, r)
	greedy.s.pm.PutValue(ctxFor(t, 10e9), srv.h.ID(), record.MakePutRecord(key, directory.Seal(r, nw.Key)))
	size := srv.s.qs.heldSize(key)
	if size == 0 {
		t.Fatal("the value put is not found under the key kad-dht files it (heldSize)")
	}
	mu.Lock()
	left[greedy.h.ID()] = int(size) // one answer's worth
	left[other.h.ID()] = int(size)
	mu.Unlock()

	served := 0
	for range 3 {
		if got, err := heldBy(ctxFor(t, 10e9), greedy.s, srv.h.ID(), key); err == nil && got.Hash() == r.Hash() {
			served++
		}
	}
	if served != 1 {
		t.Fatalf("the peer was sent the value %d times on a budget of one", served)
	}
	if got, err := heldBy(ctxFor(t, 10e9), other.s, srv.h.ID(), key); err != nil || got.Hash() != r.Hash() {
		t.Fatalf("a peer with budget left was not served: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	// kad-dht's messenger asks again once when a stream closes unanswered:
	// every request is charged, and all but the first went unserved.
	asks := charged[greedy.h.ID()] / int(size)
	if asks < 3 || charged[greedy.h.ID()]%int(size) != 0 {
		t.Fatalf("the peer was charged %d bytes for 3 asks of a %d-byte value", charged[greedy.h.ID()], size)
	}
	if u := srv.s.Usage(); u.Unserved != int64(asks-1) {
		t.Fatalf("usage %+v, want %d unserved", u, asks-1)
	}
}

// A key nothing is held under costs nothing: the answer is small.
func TestHeldSizeOfWhatIsNotHeld(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	srv := newNode(t, nil, testOptions(nw, newKeyring(1, nw.Key)))
	for _, k := range []string{"", "/", "/pk/x", "/ceiba/nothing-here", "no-namespace"} {
		if n := srv.s.qs.heldSize(k); n != 0 {
			t.Fatalf("heldSize(%q) = %d", k, n)
		}
	}
}
