package node

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	"github.com/ceiba-network/ceiba/transport"
)

// relayOnlyGater stands in for a symmetric NAT between two peers: it
// refuses every connection with other, either way, that does not go
// through a relay circuit. Connections to everyone else (the relay) pass.
type relayOnlyGater struct{ other peer.ID }

func (g relayOnlyGater) InterceptPeerDial(peer.ID) bool { return true }

func (g relayOnlyGater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	return p != g.other || isCircuit(a)
}

func (g relayOnlyGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured catches what InterceptAddrDial cannot: a direct
// connection other dials to us (the remote peer is known only once the
// handshake is done).
func (g relayOnlyGater) InterceptSecured(_ network.Direction, p peer.ID, c network.ConnMultiaddrs) bool {
	return p != g.other || isCircuit(c.RemoteMultiaddr())
}

func (g relayOnlyGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// limitedWatch records every connection a host opens or accepts with one
// peer, so a test can say afterwards that all of them were relayed.
type limitedWatch struct {
	mu     sync.Mutex
	conns  int
	direct []string
}

func watchConns(h host.Host, other peer.ID) *limitedWatch {
	w := &limitedWatch{}
	h.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if c.RemotePeer() != other {
			return
		}
		w.mu.Lock()
		defer w.mu.Unlock()
		w.conns++
		if !c.Stat().Limited || !isCircuit(c.RemoteMultiaddr()) {
			w.direct = append(w.direct, c.RemoteMultiaddr().String())
		}
	}})
	return w
}

// check fails the test if any connection with the other peer was not a
// limited relay circuit, or if there was none at all.
func (w *limitedWatch) check(t *testing.T, h host.Host, other peer.ID, when string) {
	t.Helper()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.conns == 0 || len(w.direct) > 0 {
		t.Fatalf("%s: %d connections with %s, not limited relay circuits: %v", when, w.conns, other, w.direct)
	}
	for _, c := range h.Network().ConnsToPeer(other) {
		if !c.Stat().Limited {
			t.Fatalf("%s: connection %s is not limited", when, c.RemoteMultiaddr())
		}
	}
}

// relayTestHost is a libp2p host built from the transport package's
// options, as a node builds its own, on loopback with identity sk.
func relayTestHost(t *testing.T, tc transport.Config, sk crypto.PrivKey, extra ...libp2p.Option) host.Host {
	t.Helper()
	tc.Listen = loopback
	tc.TCP, tc.QUIC = true, true
	tc.MaxMemory, tc.MaxFD = testTransport.MaxMemory, testTransport.MaxFD
	built, err := transport.Options(tc)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(append(append(built.Options, libp2p.Identity(sk)), extra...)...)
	if err != nil {
		built.ConnManager.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// publicRelay is a relay on loopback as a vps node runs one, and its TCP
// address with its peer ID.
func publicRelay(t *testing.T) (host.Host, string) {
	t.Helper()
	sk, id := hostKey(t)
	r := relayTestHost(t, transport.Config{
		Profile: transport.ProfileVPS, ForceReachability: "public", AllowPrivateDials: true,
	}, sk)
	for _, a := range r.Addrs() {
		if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			return r, a.String() + "/p2p/" + id.String()
		}
	}
	t.Fatalf("the relay listens on no TCP address: %v", r.Addrs())
	return nil, ""
}

func hostKey(t *testing.T) (crypto.PrivKey, peer.ID) {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		t.Fatal(err)
	}
	return sk, id
}

// Two nodes that can reach each other only through a circuit relay (a
// symmetric NAT each, hole punching failing) still exchange records: what
// A held before they met arrives by sync, what A publishes afterwards
// (a revocation, which must not wait for a direct path) by gossip, and no
// connection between them is ever anything but a limited relay circuit.
func TestRelayOnlyPeersSyncAndGossip(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org, other := dirtest.MustIdentity(t), dirtest.MustIdentity(t)

	// R is a public relay, as a vps node offers one: RelayResources'
	// limits make every circuit through it a limited connection.
	r, rAddr := publicRelay(t)

	// A and B: no profile, so no AutoNAT and no hole punching; each
	// refuses any path to the other but a circuit.
	ask, aid := hostKey(t)
	bsk, bid := hostKey(t)
	hb := relayTestHost(t, transport.Config{Relays: []string{rAddr}, ForceReachability: "private"}, bsk,
		libp2p.ConnectionGater(relayOnlyGater{other: aid}))
	ha := relayTestHost(t, transport.Config{}, ask, libp2p.ConnectionGater(relayOnlyGater{other: bid}))
	watchA, watchB := watchConns(ha, bid), watchConns(hb, aid)

	cfgA := testConfig(t, nw, nw.Stewards[0], t.TempDir())
	cfgA.Host = ha
	a := startNode(t, cfgA)
	cfgB := testConfig(t, nw, org, t.TempDir())
	cfgB.Host = hb
	// Only the connection starts a session on B, so a record that comes
	// later can only come by gossip.
	cfgB.SyncInterval = time.Hour
	b := startNode(t, cfgB)

	ref := &reference{t: t, nw: nw}
	ref.publish(a, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"), nw.Admit(t, other, "Colectivo Otro"))
	for _, id := range []string{"asesoria", "refugio", "acompanamiento"} {
		ref.publish(a, entryRec(t, nw, org, id, 1))
	}
	before := len(ref.recs)
	// A's GossipSub offers its recent messages (IHAVE) to new topic peers
	// for HistoryGossip heartbeats; waiting that out means B can get these
	// records by sync alone, so the count below says which path worked.
	published := time.Now()

	// The relay service tags each peer it holds a reservation for. (B's
	// own Addrs would show its circuit address, but autorelay drops relay
	// addresses that are not public, and R is on loopback.)
	waitFor(t, 20*time.Second, "B to reserve a slot on the relay", func() bool {
		ti := r.ConnManager().GetTagInfo(bid)
		return ti != nil && ti.Tags["relay-reservation"] > 0
	})
	time.Sleep(time.Until(published.Add(time.Duration(pubsub.GossipSubHistoryGossip+1) * pubsub.GossipSubHeartbeatInterval)))

	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := a.Connect(ctx, rAddr+"/p2p-circuit/p2p/"+bid.String()); err != nil {
		t.Fatalf("A connecting to B through the relay: %v", err)
	}
	watchA.check(t, ha, bid, "after connecting")

	waitFor(t, 30*time.Second, "B to pull A's records by sync over the circuit", func() bool {
		return sameDigest([]*Node{b}, ref.digest())
	})
	// The state shows a record a moment before the store has it and the
	// node counts it.
	var acc map[Via]int
	waitFor(t, 10*time.Second, "B to count the records it pulled", func() bool {
		acc = b.Status().Accepted
		return acc[ViaSync]+acc[ViaGossip] >= before
	})
	if acc[ViaSync] != before || acc[ViaGossip] != 0 {
		t.Fatalf("B accepted %v, want all %d records via sync", acc, before)
	}

	waitFor(t, 30*time.Second, "A and B to see each other on the topic over the circuit", func() bool {
		return a.Status().TopicPeers == 1 && b.Status().TopicPeers == 1
	})
	ref.publish(a, nw.RevokeBy(t, other.Public()))
	waitFor(t, 30*time.Second, "the revocation to reach B by gossip over the circuit", func() bool {
		return b.State().IsRevoked(other.Public())
	})
	waitFor(t, 10*time.Second, "B to count the revocation", func() bool {
		acc = b.Status().Accepted
		return acc[ViaSync]+acc[ViaGossip] >= before+1
	})
	if acc[ViaSync] != before || acc[ViaGossip] != 1 {
		t.Fatalf("B accepted %v, want %d via sync and the revocation via gossip", acc, before)
	}
	if !sameDigest([]*Node{a, b}, ref.digest()) {
		t.Fatal("A and B hold different records")
	}
	watchA.check(t, ha, bid, "at the end")
	watchB.check(t, hb, aid, "at the end")
}

// Only GossipSub's own protocols get the limited-connection allowance:
// every protocol pubsub may open a stream with (so a pubsub upgrade that
// adds a version fails here instead of silently losing relay-only peers),
// and nothing else, alone or mixed in.
func TestGossipHostAllowsOnlyGossipProtocols(t *testing.T) {
	// The node speaks every GossipSub version of the library's defaults
	// but FloodSub (off, PROTOCOL.md §7).
	meshsub := slices.DeleteFunc(slices.Clone(pubsub.GossipSubDefaultProtocols), func(p protocol.ID) bool { return p == pubsub.FloodSubID })
	if !slices.Equal(meshsub, gossipProtocolIDs) {
		t.Fatalf("the node speaks %v; the library's GossipSub versions are %v", gossipProtocolIDs, meshsub)
	}
	if !onlyGossip(gossipProtocolIDs) {
		t.Fatalf("not every GossipSub protocol the node speaks is allowed on circuits: %v", gossipProtocolIDs)
	}
	if onlyGossip([]protocol.ID{pubsub.FloodSubID}) {
		t.Fatal("FloodSub is allowed on circuits")
	}
	for _, pids := range [][]protocol.ID{
		nil,
		{"/ipfs/kad/1.0.0"},
		{SyncProtocol},
		{pubsub.GossipSubID_v13, "/ipfs/kad/1.0.0"},
		{pubsub.RemoteTracerProtoID},
	} {
		if onlyGossip(pids) {
			t.Errorf("%v allowed on circuits by the gossip host", pids)
		}
	}
}

// A relay a charter amendment adds is used without restarting the node,
// and one an amendment removes stops being protected.
func TestCharterRelaysTakeEffectWithoutRestart(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	r, rAddr := publicRelay(t)
	rid := r.ID()

	a := startNode(t, testConfig(t, nw, nw.Stewards[0], t.TempDir()))
	ref := &reference{t: t, nw: nw}
	ref.publish(a, nw.Genesis, nw.Admit(t, org, "Colectivo detrás de NAT"))
	cfgB := testConfig(t, nw, org, t.TempDir())
	cfgB.Bootstrap = []string{addr(a)}
	cfgB.Transport.ForceReachability = "private"
	cfgB.Transport.RelayFeedInterval = 200 * time.Millisecond
	b := startNode(t, cfgB)
	waitFor(t, 15*time.Second, "B to hold the genesis", func() bool { return sameDigest([]*Node{b}, ref.digest()) })

	reserved := func() bool {
		ti := r.ConnManager().GetTagInfo(b.Host().ID())
		return ti != nil && ti.Tags["relay-reservation"] > 0
	}
	protected := func() bool { return b.Host().ConnManager().IsProtected(rid, transport.RelayTag) }
	// Ten rounds of the feed with a charter that lists no relay.
	time.Sleep(10 * cfgB.Transport.RelayFeedInterval)
	if reserved() || protected() {
		t.Fatal("B reserved a slot on a relay no charter or configuration lists")
	}

	amend := func(relays []string) {
		t.Helper()
		cur := a.State().Charter()
		next, err := directory.Amend(cur, a.State().CharterID(), cur.Stewards, int(cur.Threshold), directory.Policy{Relays: relays}, nw.Now)
		if err != nil {
			t.Fatal(err)
		}
		ref.publish(a, nw.Sign(t, next, nw.Stewards[0], nw.Stewards[1]))
		waitFor(t, 15*time.Second, "B to hold the amended charter", func() bool { return sameDigest([]*Node{b}, ref.digest()) })
	}
	amend([]string{rAddr, "/ip4/203.0.113.9/tcp/4001"}) // the second lacks /p2p/ and is skipped
	start := time.Now()
	waitFor(t, 20*time.Second, "B to reserve a slot on the charter's relay", func() bool { return reserved() && protected() })
	t.Logf("B reserved a slot on the relay the amendment added %s after it arrived", time.Since(start).Round(time.Millisecond))
	if got := b.Reachability(); got.State == ReachUnreachable && !strings.Contains(got.Why, "1 configured relay") {
		t.Errorf("verdict does not count the charter's relay: %s", got.Why)
	}

	amend(nil)
	waitFor(t, 20*time.Second, "B to stop protecting the relay the charter dropped", func() bool { return !protected() })
}

// A steward's node offers a relay once it is publicly reachable, so NATed
// members can reserve a slot on it; a member's node with the same settings
// does not, nor a steward's whose operator turned it off. A revocation of
// the steward withdraws the offer.
func TestStewardNodeOffersRelay(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	public := func(id *directory.Identity) *Node {
		cfg := testConfig(t, nw, id, t.TempDir())
		cfg.Transport.ForceReachability = "public"
		return startNode(t, cfg)
	}
	steward, member := public(nw.Stewards[0]), public(org)
	cfgQ := testConfig(t, nw, nw.Stewards[1], t.TempDir())
	cfgQ.Transport.ForceReachability, cfgQ.Transport.NoRelayService = "public", true
	quiet := startNode(t, cfgQ) // a steward whose operator said offer_relay = false
	if steward.OffersRelay() {
		t.Fatal("a node offers a relay before any charter names it a steward")
	}
	ref := &reference{t: t, nw: nw}
	ref.publish(steward, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"))
	mustPublish(t, member, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"))
	mustPublish(t, quiet, nw.Genesis)
	waitFor(t, 10*time.Second, "the steward's node to offer a relay", steward.OffersRelay)

	// A NATed host without a key gets no slot: the relay serves only
	// admitted peers (admit.go); an admitted one reserves.
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	stewardInfo := peer.AddrInfo{ID: steward.Host().ID(), Addrs: steward.Host().Addrs()}
	ksk, _ := hostKey(t)
	keyless := relayTestHost(t, transport.Config{ForceReachability: "private"}, ksk)
	keyless.Peerstore().AddAddrs(stewardInfo.ID, stewardInfo.Addrs, time.Minute)
	if _, err := keyless.Network().DialPeer(ctx, stewardInfo.ID); err == nil {
		if _, err := client.Reserve(ctx, keyless, stewardInfo); err == nil {
			t.Fatal("a keyless host reserved a slot on the steward's relay")
		}
	}
	nsk, nid := hostKey(t)
	natted := relayTestHost(t, transport.Config{ForceReachability: "private"}, nsk)
	admitAs(natted, nw.ID, org)
	if err := natted.Connect(ctx, stewardInfo); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, natted, stewardInfo); err != nil {
		t.Fatalf("an admitted NATed host could not reserve a slot on the steward: %v", err)
	}
	waitFor(t, 20*time.Second, "a NATed host to reserve a slot on the steward", func() bool {
		ti := steward.Host().ConnManager().GetTagInfo(nid)
		return ti != nil && ti.Tags["relay-reservation"] > 0
	})

	time.Sleep(time.Second)
	if member.OffersRelay() {
		t.Fatal("a member's node (not a steward) offers a relay")
	}
	if quiet.OffersRelay() {
		t.Fatal("a steward's node offers a relay although its configuration says not to")
	}

	ref.publish(steward, nw.RevokeBy(t, nw.Stewards[0].Public()))
	waitFor(t, 10*time.Second, "the revoked steward's node to withdraw its relay", func() bool { return !steward.OffersRelay() })
}
