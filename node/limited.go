package node

import (
	"context"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// gossipProtocolIDs are the protocols the node speaks GossipSub over:
// every GossipSub version, without pubsub's FloodSub fallback, which no
// Ceiba node needs and which would only tell a prober one more thing
// about the software.
var gossipProtocolIDs = []protocol.ID{
	pubsub.GossipSubID_v13,
	pubsub.GossipSubID_v12,
	pubsub.GossipSubID_v11,
	pubsub.GossipSubID_v10,
}

// gossipProtocols is gossipProtocolIDs as a set, for gossipHost.
var gossipProtocols = func() map[protocol.ID]bool {
	m := make(map[protocol.ID]bool, len(gossipProtocolIDs))
	for _, id := range gossipProtocolIDs {
		m[id] = true
	}
	return m
}()

// gossipHost is the host GossipSub is given: the node's host (whatever
// wraps it), except that GossipSub may use limited connections, the relay
// circuits two peers share when neither can reach the other directly
// (symmetric NATs, hole punching failed).
//
// libp2p keeps applications off such circuits unless asked, because a
// relay caps each one (transport.RelayResources: 2 min and 1 MiB on ours;
// libp2p's default relay 2 min and 128 KiB). Gossip is worth that budget:
// records are small (the charter caps them, at 64 KiB by default), the
// seen cache keeps a message from crossing a connection more than about
// once, and without it a relay-only node would hear of a revocation only
// at its next sync round. When a relay cuts the circuit, GossipSub
// drops the peer; it is taken up again on the next connection, and sync
// covers what was missed in between.
//
// Only GossipSub gets this host. The DHT keeps the plain one and so stays
// off circuits: its walks fan out to many peers and would spend relays'
// budgets on lookups a direct peer can answer.
type gossipHost struct {
	host.Host
}

func newGossipHost(h host.Host) gossipHost { return gossipHost{Host: h} }

// NewStream lets GossipSub's own streams use a limited connection. Any
// other protocol (pubsub's remote tracer, say) is left as libp2p decides.
func (h gossipHost) NewStream(ctx context.Context, p peer.ID, pids ...protocol.ID) (network.Stream, error) {
	if onlyGossip(pids) {
		ctx = network.WithAllowLimitedConn(ctx, "gossip is small and must reach relay-only peers")
	}
	return h.Host.NewStream(ctx, p, pids...)
}

func onlyGossip(pids []protocol.ID) bool {
	for _, p := range pids {
		if !gossipProtocols[p] {
			return false
		}
	}
	return len(pids) > 0
}

// Network reports peers connected only through a circuit as connected.
// Allowing the stream is not enough: pubsub v0.19 takes up a new peer (and
// reopens a dead stream) only when Connectedness is Connected, not Limited,
// so it would never try. Connections themselves are reported as they are
// (ConnsToPeer keeps Stat().Limited), which the peer score relies on to
// leave relayed peers out of its IP colocation count.
func (h gossipHost) Network() network.Network { return gossipNetwork{h.Host.Network()} }

type gossipNetwork struct {
	network.Network
}

func (n gossipNetwork) Connectedness(p peer.ID) network.Connectedness {
	c := n.Network.Connectedness(p)
	if c == network.Limited {
		return network.Connected
	}
	return c
}
