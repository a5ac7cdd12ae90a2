package transport

import (
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
)

// StreamGate decides whether a stream to or from p may carry proto. It is
// called when the protocol is set on the stream (BasicHost and identify
// set it before any byte of an outbound stream's protocol is written, and
// before an inbound stream's handler runs), so a gate that returns an
// error keeps the protocol's handler from ever seeing the stream, whichever
// part of libp2p registered it. A gate may block for a bounded time (until
// the peer is admitted, say): it runs on the stream's own goroutine.
type StreamGate func(p peer.ID, dir network.Direction, proto protocol.ID) error

// gatedRM is a resource manager whose streams pass a StreamGate when their
// protocol is set. Wrapping the resource manager, rather than the
// handlers, covers the handlers libp2p registers itself (identify, kad,
// GossipSub, relay, AutoNAT, hole punching) and the streams it opens.
type gatedRM struct {
	network.ResourceManager
	gate StreamGate
}

func (g gatedRM) OpenStream(p peer.ID, dir network.Direction) (network.StreamManagementScope, error) {
	s, err := g.ResourceManager.OpenStream(p, dir)
	if err != nil {
		return nil, err
	}
	return gatedStream{StreamManagementScope: s, p: p, dir: dir, gate: g.gate}, nil
}

type gatedStream struct {
	network.StreamManagementScope
	p    peer.ID
	dir  network.Direction
	gate StreamGate
}

func (s gatedStream) SetProtocol(proto protocol.ID) error {
	if err := s.gate(s.p, s.dir, proto); err != nil {
		return err
	}
	return s.StreamManagementScope.SetProtocol(proto)
}

// peerGater refuses connections with peers deny names (early, before any
// stream: peers that failed admission recently), inbound connections from
// addresses denyAccept names and, when public is set, dials to non-public
// addresses (PublicOnlyGater).
type peerGater struct {
	deny       func(peer.ID) bool
	denyAccept func(ma.Multiaddr) bool
	public     bool
}

func (g peerGater) InterceptPeerDial(p peer.ID) bool { return g.deny == nil || !g.deny(p) }

func (g peerGater) InterceptAddrDial(p peer.ID, a ma.Multiaddr) bool {
	return !g.public || PublicOnlyGater{}.InterceptAddrDial(p, a)
}

func (g peerGater) InterceptAccept(cm network.ConnMultiaddrs) bool {
	return g.denyAccept == nil || !g.denyAccept(cm.RemoteMultiaddr())
}

func (g peerGater) InterceptSecured(_ network.Direction, p peer.ID, _ network.ConnMultiaddrs) bool {
	return g.deny == nil || !g.deny(p)
}

func (peerGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) { return true, 0 }
