package dhtstore

import (
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// publicAddrs keeps the addresses worth telling strangers about or dialing
// on a stranger's word: globally routable IPs and DNS names, and relay
// addresses through such a relay. kad-dht runs it on addresses that other
// peers announce (closer-peer lists, provider records) before they reach the
// peerstore, and on our own addresses before they go into provider records.
// It is the AddressFilter when Options.AllowPrivateAddrs is off.
func publicAddrs(addrs []ma.Multiaddr) []ma.Multiaddr {
	out := make([]ma.Multiaddr, 0, len(addrs))
	for _, a := range addrs {
		// IsPublicAddr judges the first IP or DNS component, which for a
		// relay address is the relay's: what we would actually dial.
		if manet.IsPublicAddr(a) {
			out = append(out, a)
		}
	}
	return out
}

// anyConnectedPeer is the routing-table filter: any peer that completed a
// connection and speaks the Ceiba DHT protocol may enter. Being connected is
// proof enough of reachability, and filtering by address range (as the
// public Amino DHT's WAN filter does) would keep LAN, container-network and
// loopback nodes out of each other's tables. Address hygiene is the
// AddressFilter's job.
func anyConnectedPeer(_ any, _ peer.ID) bool { return true }

// queryFilter decides which peers a lookup may contact: those we are
// connected to (the dialer reuses the connection), and otherwise those with
// at least one address our address policy lets us dial. Without it a lookup
// would spend its concurrency slots on peers announced with, say, only
// loopback addresses, which the AddressFilter then drops, and the dial would
// fail only after a slot was taken.
func queryFilter(h host.Host, allowPrivate bool) func(any, peer.AddrInfo) bool {
	return func(_ any, ai peer.AddrInfo) bool {
		if h.Network().Connectedness(ai.ID) == network.Connected {
			return true
		}
		if allowPrivate {
			return len(ai.Addrs) > 0
		}
		return len(publicAddrs(ai.Addrs)) > 0
	}
}
