package dhtstore

import (
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"

	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A peer sends a DHT server ADD_PROVIDER messages for made-up keys. They
// used to go to the plain datastore with no bound, each kept 48 h, until
// the disk was full. Found in review (session 39). Now one peer holds at
// most providersPerPeer records and all peers together the total, and
// the rendezvous through the flooded server still works.
func TestProviderRecordsAreBounded(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	srv := newNode(t, nil, testOptions(nw, newKeyring(1, nw.Key)))
	flood := func(n int) int {
		p := newNode(t, nil, testOptions(nw, newKeyring(1, nw.Key)))
		if err := p.h.Connect(ctxFor(t, 10*time.Second), srv.info()); err != nil {
			t.Fatal(err)
		}
		stored := 0
		for range n {
			buf := make([]byte, 32)
			rand.Read(buf)
			mh, _ := multihash.Sum(buf, multihash.SHA2_256, -1)
			if p.s.pm.PutProviderAddrs(ctxFor(t, 5*time.Second), srv.h.ID(), mh, p.info()) == nil {
				stored++
			}
		}
		return stored
	}
	const sent = 200
	delivered := flood(sent)
	// ADD_PROVIDER has no answer, and a refusal resets the stream: what
	// the sender wrote into a stream being reset is lost, so wait for what
	// arrived rather than for all it sent.
	time.Sleep(time.Second)
	u := srv.s.Usage()
	t.Logf("one peer sent %d ADD_PROVIDER for made-up keys (%d written without error): the server holds %d, refused %d", sent, delivered, u.Providers, u.ProvidersRefused)
	if u.Providers > providersPerPeer {
		t.Errorf("one peer has the server hold %d provider records, over its %d", u.Providers, providersPerPeer)
	}
	if u.ProvidersRefused == 0 {
		t.Error("no provider record refused")
	}

	// Two honest nodes still find each other through the flooded server.
	join := func() *testNode {
		o := testOptions(nw, newKeyring(1, nw.Key))
		o.Bootstrap = []peer.AddrInfo{srv.info()}
		o.AdvertiseInterval = time.Hour // the loop advertises as soon as there are peers
		return newNode(t, nil, o)
	}
	a, c := join(), join()
	waitFor(t, 30*time.Second, "a and c to find each other", func() bool {
		for _, n := range [][2]*testNode{{a, c}, {c, a}} {
			ch, err := n[0].s.FindPeers(ctxFor(t, 10*time.Second))
			if err != nil {
				return false
			}
			found := false
			for ai := range ch {
				found = found || ai.ID == n[1].h.ID()
			}
			if !found {
				return false
			}
		}
		return true
	})

	// The total holds against many peers.
	total := srv.s.Usage().Providers + 10
	srv.s.ps.mu.Lock()
	srv.s.ps.lim.total = total
	srv.s.ps.mu.Unlock()
	for range 3 {
		flood(providersPerPeer)
	}
	if u := srv.s.Usage(); u.Providers > total {
		t.Errorf("three peers have the server hold %d provider records, over the total of %d", u.Providers, total)
	}
}
