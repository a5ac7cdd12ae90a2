package node

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A node far behind catches up over several bounded sessions.
func TestSyncCatchesUpInBoundedSessions(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	cfgA := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfgA.DisableSync = true // A only serves
	a := startNode(t, cfgA)
	ref := &reference{t: t, nw: nw}
	ref.publish(a, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"))
	for i := range 40 {
		ref.publish(a, entryRec(t, nw, org, fmt.Sprintf("servicio-%d", i), 1))
	}
	cfgB := testConfig(t, nw, org, t.TempDir())
	cfgB.SyncMaxRecords = 8
	cfgB.SyncInterval = time.Hour // only the connection starts a session
	cfgB.Bootstrap = []string{addr(a)}
	b := startNode(t, cfgB)
	want := ref.digest()
	waitFor(t, 20*time.Second, "the new node to catch up", func() bool { return b.State().Digest() == want })
	// GossipSub may replay A's last few messages to the newcomer; the rest
	// came by sync, more than one session's worth.
	var acc map[Via]int
	waitFor(t, 10*time.Second, "the pulled records to be counted", func() bool {
		acc = b.Status().Accepted
		return acc[ViaSync]+acc[ViaGossip] >= 42
	})
	if acc[ViaSync]+acc[ViaGossip] != 42 || acc[ViaSync] <= cfgB.SyncMaxRecords {
		t.Fatalf("accepted %v, want 42 records, more than %d of them via sync", acc, cfgB.SyncMaxRecords)
	}
}

// evilResponder speaks the sync protocol with a valid network proof (an
// insider) but serves what it should not.
func evilResponder(t *testing.T, nw *dirtest.Network, serve func(want directory.Hash) []byte, listed directory.Hash, kind byte) host.Host {
	m := insiderHost(t, nw)
	s := newSyncer(&Node{cfg: Config{Network: nw.ID}})
	m.SetStreamHandler(SyncProtocol, func(st network.Stream) {
		defer st.Reset()
		c := newWire(st)
		if _, err := c.expect(msgHello, maxControlFrame); err != nil {
			return
		}
		ack := s.proof('R', st.Conn().RemotePeer(), m.ID())
		ack = binary.BigEndian.AppendUint32(ack, 1)
		ack = append(ack, randomHashes(1)[0][:]...)
		c.send(msgHelloAck, ack)
		if _, err := c.expect(msgWantBuckets, maxControlFrame); err != nil {
			return
		}
		buckets := make([]byte, 256*36)
		binary.BigEndian.PutUint32(buckets[int(listed[0])*36:], 1)
		rand.Read(buckets[int(listed[0])*36+4 : int(listed[0])*36+36])
		c.send(msgBuckets, buckets)
		if _, err := c.expect(msgWantLists, maxControlFrame); err != nil {
			return
		}
		list := append([]byte{listed[0]}, 0, 0, 0, 1)
		c.send(msgList, append(append(list, listed[:]...), kind))
		if _, err := c.expect(msgWantRecords, maxControlFrame); err != nil {
			return
		}
		c.send(msgRecord, append(listed[:32:32], serve(listed)...))
		c.flush()
		c.recv(maxControlFrame)
	})
	return m
}

// A peer that serves records that do not open, or that are not the record
// asked for, is cut off and scored down in gossip too.
func TestSyncPenalizesBadRecords(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	good := nw.Admit(t, org, "Colectivo Ejemplo")
	for name, c := range map[string]struct {
		listed directory.Hash
		kind   byte
		serve  func(directory.Hash) []byte
	}{
		"wrong key":          {good.Hash(), kindGovernance, func(directory.Hash) []byte { return directory.Seal(good, directory.NewReadKey()) }},
		"not what was asked": {sha256.Sum256([]byte("x")), kindGovernance, func(directory.Hash) []byte { return directory.Seal(good, nw.Key) }},
		// A membership listed as an entry: the list lied about its kind,
		// which the record's hash fixes.
		"listed as the wrong kind": {good.Hash(), kindEntry, func(directory.Hash) []byte { return directory.Seal(good, nw.Key) }},
	} {
		t.Run(name, func(t *testing.T) {
			a := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
			mustPublish(t, a, nw.Genesis)
			before := a.State().Digest()
			m := evilResponder(t, nw, c.serve, c.listed, c.kind)
			evil := m.ID()
			if err := a.Host().Connect(t.Context(), peer.AddrInfo{ID: evil, Addrs: m.Addrs()}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the bad server to be penalized", func() bool { return a.sync.appScore(evil) <= -misbehaviourPenalty/2 })
			if a.State().Digest() != before || a.State().Has(good.Hash()) {
				t.Fatal("a bad sync server changed the state")
			}
			if a.sync.request(evil) {
				t.Fatal("the node is willing to sync again with a peer that just served bad records")
			}
		})
	}
}

// A peer that opens a sync session and then says nothing holds neither a
// session slot past the timeout nor the node's Close.
func TestCloseDoesNotWaitForSilentPeers(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	cfg := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfg.SyncTimeout = time.Minute
	a := startNode(t, cfg)
	m := insiderHost(t, nw)
	started := make(chan struct{}, 1)
	m.SetStreamHandler(SyncProtocol, func(st network.Stream) {
		started <- struct{}{}
		<-t.Context().Done() // never answers
		st.Reset()
	})
	if err := a.Host().Connect(t.Context(), peer.AddrInfo{ID: m.ID(), Addrs: m.Addrs()}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-started:
	case <-time.After(10 * time.Second):
		t.Fatal("the node never opened a session with the silent peer")
	}
	start := time.Now()
	a.Close()
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Close took %s with a session blocked on a silent peer", took)
	}
}

// A fresh node that lacks more than one session pulls takes governance
// first: its first session brings the organization's membership with the
// first reader grants, so they are applied, not parked for want of it.
// Picked in hash order (before), the first sessions of a node joining a
// network of 10,000 readers brought thousands of grants whose membership
// came later; the bounded parked lot dropped them, they were fetched
// again, and the node went round the same hashes until its sync budget
// ran out (issue 14).
func TestCatchUpPullsGovernanceFirst(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, reader := dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	a := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	ref := &reference{t: t, nw: nw}
	admission := nw.Admit(t, org, "Colectivo Ejemplo")
	ref.publish(a, nw.Genesis, admission, nw.Vouch(t, org, reader))
	var grants []*directory.Record
	for range 300 {
		grants = append(grants, nw.Vouch(t, org, dirtest.MustIdentity(t)))
	}
	ref.publish(a, grants...)

	const perSession = 4
	cfg := testConfig(t, nw, reader, t.TempDir())
	cfg.SyncMaxRecords = perSession
	rn := startNode(t, cfg)
	rec := record(rn)
	connectTo(t, rn.Host(), a)
	var first *Event
	// (A session may fail while the connection's admission is still
	// under way; the first that completes is what counts.)
	waitFor(t, hangLimit, "the reader's node's first session with the steward's", func() bool {
		for _, ev := range rec.snapshot() {
			if ev.Kind == EventSync && ev.From == a.Host().ID() && ev.Err == nil {
				first = &ev
				return true
			}
		}
		return false
	})
	if first.Pulled != perSession {
		t.Fatalf("the first session took %d of %d records, %d parked; want all %d, governance first",
			first.Pulled, perSession, rn.parked.len(), perSession)
	}
	if !rn.State().Has(admission.Hash()) {
		t.Fatal("the first session did not bring the organization's membership")
	}
	waitFor(t, hangLimit, "the reader's node to hold the whole directory", func() bool { return rn.State().Digest() == ref.digest() })
}
