package node

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	mrand "math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// gossipAttacker is a host of its own, over real TCP, on the network's
// topic with plain GossipSub (no validator, flood publish), in the topic
// mesh of node n: what an attacker that knows the topic runs.
func gossipAttacker(t *testing.T, nw *dirtest.Network, n *Node) (host.Host, rawTopics) {
	t.Helper()
	return gossipAttackerWith(t, nw, n, nil)
}

// gossipAttackerWith is gossipAttacker with setup run on the host before it
// connects (stream handlers the node should see from the start) and more
// GossipSub options.
func gossipAttackerWith(t *testing.T, nw *dirtest.Network, n *Node, setup func(host.Host), opts ...pubsub.Option) (host.Host, rawTopics) {
	t.Helper()
	m := insiderHost(t, nw)
	if setup != nil {
		setup(m)
	}
	ps, err := pubsub.NewGossipSub(t.Context(), m, append(append(wireGossipOptions(), pubsub.WithFloodPublish(true)), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	var topics []*pubsub.Topic
	for _, name := range []string{GovernanceTopic(nw.Key), EntriesTopic(nw.Key)} {
		topic, err := ps.Join(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := topic.Subscribe(); err != nil {
			t.Fatal(err)
		}
		topics = append(topics, topic)
	}
	if err := m.Connect(t.Context(), peer.AddrInfo{ID: n.Host().ID(), Addrs: n.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the attacker and the node to see each other on the topics", func() bool {
		// The node's topics of the key the attacker holds (epoch 1's),
		// which it keeps for an epoch after a rotation.
		gov, ent := n.topicNamed(GovernanceTopic(nw.Key)), n.topicNamed(EntriesTopic(nw.Key))
		if gov == nil || !slices.Contains(gov.ListPeers(), m.ID()) || !slices.Contains(topics[0].ListPeers(), n.Host().ID()) {
			return false
		}
		// A lowdata node is not subscribed to entries: the attacker
		// publishes there only into the node's fanout.
		return !n.subscribesToEntries() || ent != nil && slices.Contains(ent.ListPeers(), m.ID()) && slices.Contains(topics[1].ListPeers(), n.Host().ID())
	})
	return m, rawTopics{Topic: topics[0], entries: topics[1]}
}

// insiderHost is a hostile host that passes admission with a steward's
// key of nw: the attacks below need a peer that got past admission (a
// keyless one is cut before it can send anything: admit_test.go), so they
// are run by the worst insider.
func insiderHost(t *testing.T, nw *dirtest.Network) host.Host {
	t.Helper()
	h := hostileHost(t)
	admitAs(h, nw.ID, nw.Stewards[len(nw.Stewards)-1])
	return h
}

func hostileHost(t *testing.T) host.Host {
	t.Helper()
	return bareHost(t, libp2p.Transport(tcp.NewTCPTransport), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"))
}

// bareHost is a plain libp2p host with only the given transports: no
// key, no network ID, no admission of its own.
func bareHost(t *testing.T, opts ...libp2p.Option) host.Host {
	t.Helper()
	h, err := libp2p.New(append([]libp2p.Option{libp2p.NoTransports, libp2p.DisableMetrics()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// A peer that knows the topic (the worst case: it knows the network ID) and
// floods it with garbage and forgeries: every message is rejected by the
// validator, none is forwarded, the sender's score drops below the
// graylist threshold, and the honest nodes' state does not change.
func TestHostilePublisherIsRejectedAndGraylisted(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	a := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	ref := &reference{t: t, nw: nw}
	// The organization's node connects once the steward's holds its
	// membership, as after a real invite: connecting between the genesis
	// and the membership, it was refused (a key unknown to a node that
	// holds a charter) and kept out for 30 s, longer than the wait below.
	ref.publish(a, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"), entryRec(t, nw, org, "asesoria", 1))
	cfgB := testConfig(t, nw, org, t.TempDir())
	cfgB.Bootstrap = []string{addr(a)}
	b := startNode(t, cfgB)
	want := ref.digest()
	waitFor(t, 10*time.Second, "both honest nodes to converge", func() bool { return sameDigest([]*Node{a, b}, want) })
	recA, recB := record(a), record(b)

	// The attacker: a plain GossipSub peer with no validator of its own.
	m, topic := gossipAttacker(t, nw, a)

	rejectedFrom := func(match func(error) bool) int {
		return recA.count(func(ev Event) bool { return ev.Kind == EventRejected && ev.From == m.ID() && match(ev.Err) })
	}
	anyErr := func(error) bool { return true }
	garbage := func() {
		junk := make([]byte, 200+mrand.IntN(800))
		rand.Read(junk)
		if err := topic.Publish(t.Context(), junk); err != nil {
			t.Fatal(err)
		}
	}
	// GossipSub may learn of a peer's subscription before its own stream
	// to that peer is up, and drops what it publishes meanwhile; so does
	// a real attacker, which simply keeps sending.
	waitFor(t, 15*time.Second, "the attacker's first message to reach the validator", func() bool {
		garbage()
		time.Sleep(50 * time.Millisecond)
		return rejectedFrom(anyErr) > 0
	})

	// What a keyless attacker can send besides random bytes: a record
	// sealed under a key it made up, behind the real key's tag copied from
	// a message it saw (under its own tag it would be a record of an
	// unknown key, TestUnknownEpochFlooderIsGraylisted); and what one with
	// a stolen read key but no signing key can: a record whose signature
	// does not verify.
	madeUp := directory.Seal(entryRec(t, nw, org, "otra", 1), directory.NewReadKey())
	realTag := nw.Key.Tag()
	copy(madeUp[1:], realTag[:])
	forged := entryRec(t, nw, org, "falsa", 2)
	forged.Sigs[0].Sig[0] ^= 0xff
	for _, msg := range [][]byte{madeUp, directory.Seal(forged, nw.Key)} {
		if err := topic.Publish(t.Context(), msg); err != nil {
			t.Fatal(err)
		}
	}
	is := func(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }
	waitFor(t, 10*time.Second, "the wrongly sealed and the forged record to be rejected", func() bool {
		return rejectedFrom(is(directory.ErrDecrypt)) == 1 && rejectedFrom(is(directory.ErrBadSignature)) == 1
	})
	waitFor(t, 20*time.Second, "the attacker to be graylisted by the honest node", func() bool {
		if s, ok := a.PeerScore(m.ID()); ok && s < GraylistThreshold {
			return true
		}
		garbage()
		time.Sleep(100 * time.Millisecond)
		return false
	})
	s, _ := a.PeerScore(m.ID())
	t.Logf("attacker's score on the honest node: %.0f (graylist below %d)", s, GraylistThreshold)
	if n := rejectedFrom(anyErr); n < 3 {
		t.Fatalf("honest node reported %d rejections from the attacker, want at least 3", n)
	}
	// Once graylisted, its messages are dropped before validation. This
	// is an absence, so it can only be watched for a while: a second.
	before := rejectedFrom(anyErr)
	for range 5 {
		garbage()
	}
	time.Sleep(time.Second)
	if after := rejectedFrom(anyErr); after != before {
		t.Fatalf("graylisted peer's messages still reach the validator (%d → %d rejections)", before, after)
	}

	if !sameDigest([]*Node{a, b}, want) {
		t.Fatal("the attack changed an honest node's state")
	}
	honest := map[directory.Hash]bool{}
	for _, r := range ref.recs {
		honest[r.Hash()] = true
	}
	// (B may still report an honest record it applied just before the
	// recorder started: the state changes before the event is sent.)
	if n := recB.count(func(ev Event) bool { return ev.Kind == EventRejected || ev.Kind == EventRecord && !honest[ev.Hash] }); n != 0 {
		t.Fatalf("the node behind the honest one saw %d records from the attack: something was forwarded: %+v", n, recB.snapshot())
	}
	waitFor(t, 10*time.Second, "the honest node's store to hold what it pools", func() bool {
		return a.Status().Records == len(a.State().Hashes())
	})
}

// A peer that got past admission (a steward's key: the worst insider) but
// opens the sync protocol without proof that it holds the network ID
// learns nothing: no count, no hashes, no records. The sync layer's own
// check stands behind admission; a keyless stranger never gets this far
// (TestKeylessPeerLearnsNothingAndIsCut).
func TestSyncRefusesStrangers(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	a := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	mustPublish(t, a, nw.Genesis)
	m := insiderHost(t, nw)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := m.Connect(ctx, peer.AddrInfo{ID: a.Host().ID(), Addrs: a.Host().Addrs()}); err != nil {
		t.Fatal(err)
	}
	s, err := m.NewStream(ctx, a.Host().ID(), SyncProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Reset()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	// A hello with a made-up proof and a claim to every epoch key.
	hello := make([]byte, 32)
	rand.Read(hello)
	hello = binary.BigEndian.AppendUint16(hello, 1)
	hello = binary.BigEndian.AppendUint64(hello, 1)
	w := bufio.NewWriter(s)
	frame := binary.AppendUvarint(nil, uint64(len(hello)+1))
	frame = append(frame, msgHello)
	w.Write(append(frame, hello...))
	w.Flush()
	// Whether the node resets or closes the stream, it says nothing.
	if got, _ := io.ReadAll(s); len(got) != 0 {
		t.Fatalf("stranger got %d bytes back", len(got))
	}
}
