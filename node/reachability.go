package node

// Reachability: how peers can reach this node, and what to do when they
// cannot. It is derived from libp2p's own verdicts (AutoNAT's reachability
// events, the addresses the host advertises), never from guesses about the
// local network, so what `ceiba status` says is what peers found.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
	"github.com/libp2p/go-libp2p/p2p/host/relaysvc"
	circuitproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/transport"
)

// ReachState is the verdict on how peers reach this node.
type ReachState string

// Reachability verdicts.
const (
	// ReachPublic: peers dialed this node directly at a public address.
	ReachPublic ReachState = "public"
	// ReachRelay: behind NAT, reachable through a relay's circuit address
	// (and directly after hole punching, when the NAT allows it).
	ReachRelay ReachState = "relay"
	// ReachUnreachable: peers tried and could not dial this node, and it
	// has no relay. It can still dial out, sync and read; others cannot
	// start a connection to it.
	ReachUnreachable ReachState = "unreachable"
	// ReachUnknown: no verdict yet (too few peers asked), or reachability
	// checks are off.
	ReachUnknown ReachState = "unknown"
)

// ReachReason names which case of the verdict applies: a stable code the
// web UI translates (Why and Fix are English, for the CLI and logs).
type ReachReason string

// Reachability reasons, one per case of the verdict.
const (
	// ReasonConfirmed (public): peers dialed this node back at a public
	// address.
	ReasonConfirmed ReachReason = "confirmed"
	// ReasonAutoNATPublic (public): AutoNAT found the node publicly
	// reachable, or the configuration forces it.
	ReasonAutoNATPublic ReachReason = "autonat-public"
	// ReasonRelayed (relay): reachable through N relay addresses.
	ReasonRelayed ReachReason = "relayed"
	// ReasonNoRelay (unreachable): behind NAT and no relay configured.
	ReasonNoRelay ReachReason = "unreachable-no-relay"
	// ReasonRelayPending (unreachable): behind NAT, and none of the N
	// configured relays has granted a slot yet.
	ReasonRelayPending ReachReason = "unreachable-relay-pending"
	// ReasonChecksOff (unknown): no transport profile, so no checks.
	ReasonChecksOff ReachReason = "checks-off"
	// ReasonNoPeers (unknown): no peer connected that could check.
	ReasonNoPeers ReachReason = "no-peers"
	// ReasonChecking (unknown): peers have not finished checking.
	ReasonChecking ReachReason = "checking"
	// ReasonCheckingPrivate (unknown): still checking, and the node has
	// only private addresses and no relay, so it is probably behind NAT.
	ReasonCheckingPrivate ReachReason = "checking-private"
)

// ReachReasons lists every reason Reachability can give, so whatever
// translates them can check that none is missing.
var ReachReasons = []ReachReason{
	ReasonConfirmed, ReasonAutoNATPublic, ReasonRelayed, ReasonNoRelay, ReasonRelayPending,
	ReasonChecksOff, ReasonNoPeers, ReasonChecking, ReasonCheckingPrivate,
}

// Reachability is the answer to "can peers reach this node?", in words an
// operator can act on.
type Reachability struct {
	State ReachState
	// Reason is the case of the verdict, and N the number its message
	// counts: relay addresses for ReasonRelayed, configured relays for
	// ReasonRelayPending, 0 otherwise.
	Reason ReachReason
	N      int
	// Why explains the verdict; Fix says what to do, empty when nothing
	// needs doing.
	Why, Fix string
	// Direct are the public addresses peers confirmed (or, with no
	// confirmation yet, the public ones the host advertises); Relayed are
	// circuit addresses through relays.
	Direct, Relayed []ma.Multiaddr
	// Since is when the verdict's libp2p input last changed.
	Since time.Time
}

// reachState is the node's reachability bookkeeping. The node holds it by
// value; it is filled by startHost (bandwidth) and startReachability.
type reachState struct {
	mu        sync.Mutex
	autonat   network.Reachability // from EvtLocalReachabilityChanged
	confirmed []ma.Multiaddr       // AutoNAT v2: addresses peers dialed back
	refused   []ma.Multiaddr       // AutoNAT v2: addresses peers could not dial
	since     time.Time
	watching  bool

	bw      *metrics.BandwidthCounter
	profile transport.Profile
	relays  int
}

// withPolicyTransport adds what the charter's policy says to the transport
// configuration: its relays, for NATed nodes. They are read each time the
// host looks for relays, so an amendment that adds one takes effect
// without a restart.
func (n *Node) withPolicyTransport(tc transport.Config) transport.Config {
	tc.RelayFeed = n.charterRelays
	return tc
}

func (n *Node) charterRelays() []string {
	if c := n.state.Charter(); c != nil {
		return slices.Clone(c.Policy.Relays)
	}
	return nil
}

// hostBuilt records what the transport package built that the node reports
// on later.
func (n *Node) hostBuilt(b transport.Built, tc transport.Config) {
	n.reach.mu.Lock()
	defer n.reach.mu.Unlock()
	n.reach.bw = b.Bandwidth
	n.reach.profile = b.Profile
	n.reach.relays = len(tc.Relays)
}

// Throttled returns how long the node's streams have waited under its
// byte-rate caps, summed over streams.
func (n *Node) Throttled() transport.Throttled { return transport.ThrottledOf(n.host) }

// RateCaps returns the byte-per-second caps on the node's streams (zero:
// none in that direction).
func (n *Node) RateCaps() transport.Rates { return transport.RatesOf(n.host) }

// Bandwidth returns the bytes this node's host sent and received since it
// started, and the current rates (bytes per second, smoothed). It is zero
// for a host the node did not build.
func (n *Node) Bandwidth() metrics.Stats {
	n.reach.mu.Lock()
	bw := n.reach.bw
	n.reach.mu.Unlock()
	if bw == nil {
		return metrics.Stats{}
	}
	return bw.GetBandwidthTotals()
}

// startReachability follows the host's reachability events and, when the
// configuration asks for it, starts mDNS. Everything it starts ends with
// the node's context.
func (n *Node) startReachability() error {
	sub, err := n.host.EventBus().Subscribe([]any{
		new(event.EvtLocalReachabilityChanged),
		new(event.EvtHostReachableAddrsChanged),
	})
	if err != nil {
		return fmt.Errorf("node: reachability events: %w", err)
	}
	n.reach.mu.Lock()
	n.reach.watching = true
	n.reach.since = time.Now()
	n.reach.mu.Unlock()
	n.wg.Go(func() {
		defer sub.Close()
		for {
			select {
			case <-n.ctx.Done():
				return
			case e, ok := <-sub.Out():
				if !ok {
					return
				}
				n.reach.mu.Lock()
				switch e := e.(type) {
				case event.EvtLocalReachabilityChanged:
					n.reach.autonat = e.Reachability
				case event.EvtHostReachableAddrsChanged:
					n.reach.confirmed = slices.Clone(e.Reachable)
					n.reach.refused = slices.Clone(e.Unreachable)
				}
				n.reach.since = time.Now()
				n.reach.mu.Unlock()
				n.log.Info("reachability changed", "state", n.Reachability().State)
			}
		}
	})
	if n.ownHost {
		n.wg.Go(n.stewardRelayLoop)
	}
	if n.cfg.Transport.MDNS && n.ownHost {
		return n.startMDNS()
	}
	return nil
}

// stewardRelayCheck is how often a node checks whether it became, or
// stopped being, a steward: the charter changes rarely.
const stewardRelayCheck = 10 * time.Second

// stewardRelayLoop offers a circuit relay while this node is a steward of
// the current charter: stewards are the members the others already trust
// to be online, so NATed members can count on them. As with the vps
// profile, libp2p's relay manager runs the relay only while AutoNAT finds
// the node publicly reachable (a steward's laptop behind NAT offers
// nothing), with the same bounded resources. lowdata stewards offer none:
// a metered link is not spent on others. vps nodes have it from the start.
// Transport.NoRelayService turns it off.
func (n *Node) stewardRelayLoop() {
	p, _ := transport.ParseProfile(string(n.cfg.Transport.Profile))
	if p == transport.ProfileLowData || p == transport.ProfileVPS || n.cfg.Transport.RelayService || n.cfg.Transport.NoRelayService {
		return
	}
	var mgr *relaysvc.RelayManager
	defer func() {
		if mgr != nil {
			mgr.Close()
		}
	}()
	events, cancel := n.Subscribe()
	defer cancel()
	t := time.NewTicker(stewardRelayCheck)
	defer t.Stop()
	for {
		steward := n.isSteward()
		switch {
		case steward && mgr == nil:
			mgr = relaysvc.NewRelayManager(n.host, relayv2.WithResources(transport.RelayResources()), relayv2.WithACL(relayACL{n}))
			n.log.Info("offering a relay while this node is a steward and publicly reachable")
		case !steward && mgr != nil:
			mgr.Close()
			mgr = nil
			n.log.Info("no longer a steward: relay offer withdrawn")
		}
		if !n.waitForStewardChange(events, t.C) {
			return
		}
	}
}

// waitForStewardChange waits for a record that may make this node a
// steward or stop it being one (a charter version, an approval completing
// one, a revocation), or for the periodic check. It returns false when the
// node closes.
func (n *Node) waitForStewardChange(events <-chan Event, tick <-chan time.Time) bool {
	for {
		select {
		case <-n.ctx.Done():
			return false
		case <-tick:
			return true
		case e, ok := <-events:
			if !ok {
				return false
			}
			switch e.Type {
			case directory.TypeCharter, directory.TypeApproval, directory.TypeRevocation:
				return true
			}
		}
	}
}

// isSteward says whether this node's key is a steward of the current
// charter and not revoked.
func (n *Node) isSteward() bool {
	me := n.id.Public()
	c := n.state.Charter()
	return c != nil && slices.Contains(c.StewardKeys(), me) && !n.state.IsRevoked(me)
}

// OffersRelay says whether this node's host answers circuit relay v2
// reservations now.
func (n *Node) OffersRelay() bool {
	return slices.Contains(n.host.Mux().Protocols(), circuitproto.ProtoIDv2Hop)
}

// MDNSServiceName is the mDNS service this node announces on the LAN. It
// is derived from the network ID so nodes of different networks on one LAN
// ignore each other, and hashed so the announcement does not spell the ID
// out; anyone who knows the ID can still recognise it.
func MDNSServiceName(n [32]byte) string {
	h := sha256.Sum256(append([]byte("ceiba mdns v1 "), n[:]...))
	return "_ceiba-" + hex.EncodeToString(h[:6])
}

func (n *Node) startMDNS() error {
	svc := mdns.NewMdnsService(n.host, MDNSServiceName(n.cfg.Network), mdnsNotifee{n})
	if err := svc.Start(); err != nil {
		return fmt.Errorf("node: mDNS: %w", err)
	}
	n.wg.Go(func() {
		<-n.ctx.Done()
		closeQuietly(svc)
	})
	return nil
}

func closeQuietly(c io.Closer) { _ = c.Close() }

type mdnsNotifee struct{ n *Node }

func (m mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	n := m.n
	if ai.ID == n.host.ID() || n.host.Network().Connectedness(ai.ID) == network.Connected {
		return
	}
	n.wg.Go(func() {
		ctx, cancel := context.WithTimeout(n.ctx, 15*time.Second)
		defer cancel()
		if err := n.host.Connect(ctx, ai); err != nil {
			n.log.Debug("LAN peer unreachable", "peer", ai.ID, "err", err)
		}
	})
}

// Reachability says how peers can reach this node, why, and what to do
// about it.
func (n *Node) Reachability() Reachability {
	n.reach.mu.Lock()
	an, watching, since := n.reach.autonat, n.reach.watching, n.reach.since
	confirmed := slices.Clone(n.reach.confirmed)
	refused := len(n.reach.refused)
	profile, relays := n.reach.profile, n.reach.relays
	n.reach.mu.Unlock()
	if n.ownHost {
		relays += len(transport.UsableRelays(n.charterRelays()))
	}

	r := Reachability{State: ReachUnknown, Since: since}
	var advertisedPublic []ma.Multiaddr
	for _, a := range n.host.Addrs() {
		if isCircuit(a) {
			r.Relayed = append(r.Relayed, a)
		} else if manet.IsPublicAddr(a) {
			advertisedPublic = append(advertisedPublic, a)
		}
	}
	const (
		fixNoRelay = "add a relay address to [node] relays in config.toml, or ask a steward to run a vps node and list it in the charter's relays"
		fixDirect  = "nothing needed; for direct connections, forward the listen port on the router or run the node on a vps"
	)
	switch {
	case len(confirmed) > 0 || an == network.ReachabilityPublic:
		r.State = ReachPublic
		r.Direct = confirmed
		if len(r.Direct) == 0 {
			r.Direct = advertisedPublic
		}
		r.Reason = ReasonConfirmed
		r.Why = "peers dialed this node back at a public address"
		if len(confirmed) == 0 {
			r.Reason = ReasonAutoNATPublic
			r.Why = "AutoNAT found this node publicly reachable (or the configuration says it is)"
		}
	case len(r.Relayed) > 0:
		r.State = ReachRelay
		r.Reason, r.N = ReasonRelayed, len(r.Relayed)
		r.Why = fmt.Sprintf("behind NAT or a firewall; reachable through %d relay address(es), and directly after hole punching where the NAT allows it", len(r.Relayed))
		r.Fix = fixDirect
	case an == network.ReachabilityPrivate || refused > 0:
		r.State = ReachUnreachable
		if relays == 0 {
			r.Reason = ReasonNoRelay
			r.Why = "behind NAT or a firewall (peers could not dial back) and no relay configured; this node can fetch and sync, but others cannot connect to it"
			r.Fix = fixNoRelay
		} else {
			r.Reason, r.N = ReasonRelayPending, relays
			r.Why = fmt.Sprintf("behind NAT or a firewall, and none of the %d configured relay(s) has granted a slot yet", relays)
			r.Fix = "check that the relays are online and run the vps profile, or add another relay to [node] relays"
		}
	case !watching || profile == transport.ProfileNone:
		r.Reason = ReasonChecksOff
		r.Why = "reachability checks are off for this node (no transport profile)"
		r.Fix = "set profile = \"laptop\", \"vps\" or \"lowdata\" in config.toml"
	case len(n.host.Network().Peers()) == 0:
		r.Reason = ReasonNoPeers
		r.Why = "no peers are connected yet, so none could check"
		r.Fix = "check that this machine is online and that [node] bootstrap lists reachable peers"
	default:
		r.Reason = ReasonChecking
		r.Why = "peers have not finished checking whether they can dial this node (this takes a few minutes after start)"
		if len(advertisedPublic) == 0 && relays == 0 {
			r.Reason = ReasonCheckingPrivate
			r.Why += "; it has only private addresses, so it is probably behind NAT"
			r.Fix = fixNoRelay
		}
	}
	return r
}

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// String is the verdict in one line: state, why and fix.
func (r Reachability) String() string {
	var sb strings.Builder
	sb.WriteString(string(r.State))
	if r.Why != "" {
		sb.WriteString(": " + r.Why)
	}
	if r.Fix != "" {
		sb.WriteString(". Fix: " + r.Fix)
	}
	return sb.String()
}
