package node

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// Five real nodes on loopback (TCP and QUIC, GossipSub, sync and the DHT),
// connected in a line (0–1–2–3–4) so a record must be forwarded, not just
// flooded by its publisher:
//   - an entry published on one node becomes searchable on all;
//   - a node that was down during ten updates converges after restart,
//     through sync (gossip only carries what is new);
//   - a revocation published on one node is enforced on all.
func TestFiveNodes(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	ids := []*directory.Identity{nw.Stewards[0], org, dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t)}
	cfgs := make([]Config, 5)
	nodes := make([]*Node, 5)
	for i := range nodes {
		cfgs[i] = testConfig(t, nw, ids[i], t.TempDir())
		cfgs[i].DHT = DHTConfig{AllowPrivateAddrs: true} // the whole stack
		if i > 0 {
			cfgs[i].Bootstrap = []string{addr(nodes[i-1])}
		}
		nodes[i] = startNode(t, cfgs[i])
	}
	ref := &reference{t: t, nw: nw}
	rec := make([]*recorder, 5)
	for i, n := range nodes {
		rec[i] = record(n)
	}

	// Publish on the steward's node and the organization's node.
	ref.publish(nodes[0], nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"))
	// The other three nodes' keys are admitted too: a node syncs only
	// with a key its peers admit.
	for i, id := range ids[2:] {
		ref.publish(nodes[0], nw.Admit(t, id, fmt.Sprintf("Nodo %d", i+3)))
	}
	start := time.Now()
	ref.publish(nodes[1], entryRec(t, nw, org, "asesoria", 1))
	waitFor(t, 20*time.Second, "the entry to be searchable on all five nodes", func() bool {
		return searchable(nodes, "asesoria juridica", "asesoria")
	})
	t.Logf("entry searchable on 5/5 nodes %s after publish", time.Since(start).Round(time.Millisecond))
	want := ref.digest()
	waitFor(t, 10*time.Second, "equal digests", func() bool { return sameDigest(nodes, want) })

	// Node 4 goes down; ten updates happen without it.
	if err := nodes[4].Close(); err != nil {
		t.Fatal(err)
	}
	nodes[4] = nil
	for i := range 5 {
		ref.publish(nodes[1+i%3], entryRec(t, nw, org, fmt.Sprintf("servicio-%d", i), 1))
	}
	for seq := uint64(2); seq <= 6; seq++ {
		ref.publish(nodes[seq%4], entryRec(t, nw, org, "asesoria", seq))
	}
	want = ref.digest()
	waitFor(t, 20*time.Second, "the four running nodes to converge", func() bool { return sameDigest(nodes, want) })

	// GossipSub's peers advertise (IHAVE) the messages of their last three
	// heartbeats to a newcomer. Waiting past that window (setup, not an
	// assertion) leaves sync to do the work, at least on an unloaded
	// machine; either way the node must converge.
	time.Sleep(5 * time.Second)

	// Restarted with the same data directory and identity, it catches up.
	start = time.Now()
	nodes[4] = startNode(t, cfgs[4])
	rec[4] = record(nodes[4])
	waitFor(t, 30*time.Second, "the restarted node to converge", func() bool { return sameDigest(nodes, want) })
	t.Logf("restarted node converged %s after start", time.Since(start).Round(time.Millisecond))
	// Five new entries and the newest of five versions of another (peers
	// pool only that one). The state shows records a moment before they
	// are durable and counted, so wait for the count too.
	var acc map[Via]int
	waitFor(t, 10*time.Second, "the restarted node to count what it pulled", func() bool {
		acc = nodes[4].Status().Accepted
		return acc[ViaSync]+acc[ViaGossip] >= 6
	})
	if acc[ViaSync]+acc[ViaGossip] != 6 || acc[ViaLocal]+acc[ViaDHT] != 0 {
		t.Fatalf("restarted node accepted %v, want 6 records from its peers", acc)
	}
	t.Logf("restarted node took %d records through sync, %d through gossip replay", acc[ViaSync], acc[ViaGossip])
	if res := nodes[4].State().Search(directory.Query{Text: "asesoria"}); len(res) != 6 {
		t.Fatalf("restarted node finds %d entries, want 6", len(res))
	} else if l, _ := nodes[4].State().Lookup(res[0].Key); l.Entry == nil {
		t.Fatalf("lookup of %s failed", res[0].Key)
	}
	if l, ok := nodes[4].State().Lookup("entry/" + org.Public().Hex() + "/asesoria"); !ok || l.Entry.Seq != 6 {
		t.Fatalf("restarted node holds asesoria at seq %v, want 6", l.Entry)
	}

	// A revocation published on a node that is neither the steward's nor
	// the organization's is enforced everywhere.
	start = time.Now()
	ref.publish(nodes[3], nw.RevokeBy(t, org.Public()))
	waitFor(t, 20*time.Second, "the revocation to be enforced on all five nodes", func() bool {
		for _, n := range nodes {
			if !n.State().IsRevoked(org.Public()) || len(n.State().Search(directory.Query{})) != 0 {
				return false
			}
		}
		return true
	})
	t.Logf("revocation enforced on 5/5 nodes %s after publish", time.Since(start).Round(time.Millisecond))
	want = ref.digest()
	waitFor(t, 10*time.Second, "equal digests after the revocation", func() bool { return sameDigest(nodes, want) })

	// Whatever the revoked key signed is gone from every store, and
	// nothing new from it is accepted anywhere.
	waitFor(t, 10*time.Second, "every store to hold exactly what its state pools", func() bool {
		for _, n := range nodes {
			if n.Status().Records != len(n.State().Hashes()) {
				return false
			}
		}
		return true
	})
	_, err := nodes[2].Publish(t.Context(), entryRec(t, nw, org, "despues", 1))
	if !errors.Is(err, directory.ErrRevoked) {
		t.Fatalf("publishing as a revoked key: err = %v, want ErrRevoked", err)
	}
	for i, r := range rec {
		if n := r.count(func(ev Event) bool {
			return ev.Kind == EventRejected && ev.Via == ViaGossip && !errors.Is(ev.Err, directory.ErrStale)
		}); n != 0 {
			t.Errorf("node %d rejected %d gossip messages from honest peers", i, n)
		}
	}
}

// A bootstrap peer that never answers (offline, or a host that swallows
// connections) must not hold up the node's start: an activist opening the
// laptop offline still searches the local copy at once. The silent peer
// here accepts TCP and never speaks; libp2p gives up on such a dial after
// seconds and closes it. The node must be running while that dial is
// still pending, not after it failed.
func TestSilentBootstrapPeerDoesNotDelayStart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	_, silent := hostKey(t)
	nw := dirtest.New(t, 1, 1)
	cfg := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfg.Bootstrap = []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", ln.Addr().(*net.TCPAddr).Port, silent)}
	startNode(t, cfg)
	var c net.Conn
	select {
	case c = <-accepted:
	case <-time.After(10 * time.Second):
		t.Fatal("the node never dialed its bootstrap peer")
	}
	defer c.Close()
	// Still open: the dial is pending (a closed one reads EOF at once).
	c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	var b [64]byte
	for {
		_, err := c.Read(b[:])
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			return
		}
		if err != nil {
			t.Fatalf("the node started only after its dial to the silent bootstrap peer ended (%v)", err)
		}
	}
}
