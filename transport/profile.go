package transport

import (
	"context"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/control"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/autorelay"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
)

// Profile names where a node runs; it decides limits and which NAT
// traversal services the node uses or offers.
type Profile string

// Profiles.
const (
	// ProfileNone applies no profile: only the Config's explicit fields.
	ProfileNone Profile = ""
	// ProfileLaptop is a machine behind a home or office NAT: moderate
	// limits, AutoNAT, hole punching, the configured relays.
	ProfileLaptop Profile = "laptop"
	// ProfileVPS is a server with a public address: more connections, and
	// it helps others (AutoNAT service, a bounded relay). It refuses to
	// dial private addresses.
	ProfileVPS Profile = "vps"
	// ProfileLowData is a metered or slow link: few connections, a small
	// resource budget, no services for others.
	ProfileLowData Profile = "lowdata"
)

// ProfileLimits are the connection and resource limits a profile applies
// to the fields left zero.
type ProfileLimits struct {
	ConnLow, ConnHigh int
	ConnGrace         time.Duration
	MaxMemory         int64 // 0: scale to the machine
	MaxFD             int   // 0: scale to the machine
	// SendRate and RecvRate are byte-per-second caps; 0: none.
	SendRate, RecvRate int64
}

// Limits returns the limits of p; ProfileNone has none (zeros).
func (p Profile) Limits() ProfileLimits {
	switch p {
	case ProfileLaptop:
		return ProfileLimits{ConnLow: 32, ConnHigh: 96, ConnGrace: time.Minute}
	case ProfileVPS:
		// A relay and DHT server for a network of a few hundred
		// organizations; the memory and descriptor budgets still scale
		// with the machine, which is what a cheap VPS is sized by.
		return ProfileLimits{ConnLow: 128, ConnHigh: 384, ConnGrace: time.Minute}
	case ProfileLowData:
		// Every connection costs keep-alives, identify and DHT chatter;
		// a dozen peers are enough to hear gossip and sync.
		//
		// The rate caps keep Ceiba from filling a slow link the person
		// also needs for calls and messages: 64 KiB/s in (a first sync of
		// 10,000 entries, ~15 MiB, takes about four minutes), 32 KiB/s out
		// (a lowdata node serves little).
		return ProfileLimits{ConnLow: 6, ConnHigh: 16, ConnGrace: 30 * time.Second,
			MaxMemory: 64 << 20, MaxFD: 128, SendRate: LowDataSendRate, RecvRate: LowDataRecvRate}
	}
	return ProfileLimits{}
}

// The lowdata profile's byte-rate caps, in bytes per second.
const (
	LowDataSendRate = 32 << 10
	LowDataRecvRate = 64 << 10
)

// ParseProfile accepts the profile names of config.toml.
func ParseProfile(s string) (Profile, error) {
	switch p := Profile(s); p {
	case ProfileNone, ProfileLaptop, ProfileVPS, ProfileLowData:
		return p, nil
	}
	return "", fmt.Errorf("transport: unknown profile %q (laptop, vps or lowdata)", s)
}

// RelayResources are the limits of the relay a vps node offers. Relayed
// connections are meant to carry the hole-punching handshake and small
// sync sessions between NATed nodes, not bulk traffic, so each circuit is
// short and capped; a node that cannot hole punch reconnects through a new
// circuit.
func RelayResources() relayv2.Resources {
	r := relayv2.DefaultResources()
	r.Limit = &relayv2.RelayLimit{Duration: 2 * time.Minute, Data: 1 << 20}
	r.MaxReservations = 128
	r.MaxCircuits = 8
	r.MaxReservationsPerIP = 4
	return r
}

// withProfile fills the fields cfg leaves zero from its profile. A profile
// only turns services on; it cannot tell an explicit false from unset.
func (cfg Config) withProfile() (Config, error) {
	p, err := ParseProfile(string(cfg.Profile))
	if err != nil {
		return cfg, err
	}
	l := p.Limits()
	if cfg.ConnLow == 0 {
		cfg.ConnLow = l.ConnLow
	}
	if cfg.ConnHigh == 0 {
		cfg.ConnHigh = l.ConnHigh
	}
	if cfg.ConnGrace == 0 {
		cfg.ConnGrace = l.ConnGrace
	}
	if cfg.MaxMemory == 0 {
		cfg.MaxMemory = l.MaxMemory
	}
	if cfg.MaxFD == 0 {
		cfg.MaxFD = l.MaxFD
	}
	if cfg.SendRate == 0 {
		cfg.SendRate = l.SendRate
	}
	if cfg.RecvRate == 0 {
		cfg.RecvRate = l.RecvRate
	}
	switch p {
	case ProfileLaptop, ProfileLowData:
		cfg.AutoNAT, cfg.HolePunching = true, true
	case ProfileVPS:
		cfg.AutoNAT, cfg.HolePunching = true, true
		cfg.NATService, cfg.RelayService = true, true
	}
	if cfg.NoRelayService {
		cfg.RelayService = false
	}
	switch cfg.ForceReachability {
	case "", "public", "private":
	default:
		return cfg, fmt.Errorf("transport: ForceReachability %q is not public or private", cfg.ForceReachability)
	}
	return cfg, nil
}

func natOptions(cfg Config, relays []peer.AddrInfo, cm *connmgr.BasicConnMgr) []libp2p.Option {
	var o []libp2p.Option
	// Kept even with a forced verdict: libp2p v0.51 advertises observed
	// addresses only once AutoNAT v2 confirms them, and hole punching
	// needs them.
	if cfg.AutoNAT {
		o = append(o, libp2p.EnableAutoNATv2())
	}
	if cfg.NATService {
		// Each answer costs a dial back; bound what strangers can make us
		// dial.
		o = append(o, libp2p.EnableNATService(), libp2p.AutoNATServiceRateLimit(60, 3, time.Minute))
	}
	if cfg.HolePunching {
		o = append(o, libp2p.EnableHolePunching())
	}
	if cfg.RelayService {
		ro := []relayv2.Option{relayv2.WithResources(RelayResources())}
		if cfg.RelayACL != nil {
			ro = append(ro, relayv2.WithACL(cfg.RelayACL))
		}
		o = append(o, libp2p.EnableRelayService(ro...))
	}
	if len(relays) > 0 || cfg.RelayFeed != nil {
		src := &relaySource{static: relays, feed: cfg.RelayFeed, cm: cm, fed: map[peer.ID]bool{}}
		interval := cfg.RelayFeedInterval
		if interval <= 0 {
			interval = 30 * time.Second
		}
		// The configured and charter relays are the only candidates, so
		// waiting for more (libp2p's default boot delay) would only delay
		// reachability.
		o = append(o, libp2p.EnableAutoRelayWithPeerSource(src.candidates,
			autorelay.WithNumRelays(2),
			autorelay.WithMinCandidates(1),
			autorelay.WithBootDelay(0),
			autorelay.WithBackoff(time.Minute),
			autorelay.WithMinInterval(interval)))
	}
	switch cfg.ForceReachability {
	case "public":
		o = append(o, libp2p.ForceReachabilityPublic())
	case "private":
		o = append(o, libp2p.ForceReachabilityPrivate())
	}
	if public := cfg.Profile == ProfileVPS && !cfg.AllowPrivateDials; public || cfg.DenyPeer != nil || cfg.DenyAccept != nil {
		o = append(o, libp2p.ConnectionGater(peerGater{deny: cfg.DenyPeer, denyAccept: cfg.DenyAccept, public: public}))
	}
	return o
}

// relaySource hands AutoRelay its candidates: the static relays, then
// those the feed lists now. AutoRelay calls it again whenever it lacks
// candidates, so relays a charter amendment adds are used without a
// restart. A relay the feed no longer lists loses its protection; a
// reservation already held on it lasts until the relay drops it (at most
// the reservation's hour) or the connection closes.
type relaySource struct {
	static []peer.AddrInfo
	feed   func() []string
	cm     *connmgr.BasicConnMgr

	mu  sync.Mutex
	fed map[peer.ID]bool
}

func (s *relaySource) candidates(_ context.Context, num int) <-chan peer.AddrInfo {
	all := slices.Clone(s.static)
	if s.feed != nil {
		static := map[peer.ID]bool{}
		for _, r := range s.static {
			static[r.ID] = true
		}
		now := map[peer.ID]bool{}
		for _, ai := range UsableRelays(s.feed()) {
			if !static[ai.ID] {
				now[ai.ID] = true
				all = append(all, ai)
			}
		}
		s.mu.Lock()
		for id := range s.fed {
			if !now[id] {
				s.cm.Unprotect(id, RelayTag)
			}
		}
		for id := range now {
			s.cm.Protect(id, RelayTag)
		}
		s.fed = now
		s.mu.Unlock()
	}
	ch := make(chan peer.AddrInfo, len(all))
	defer close(ch)
	for i, ai := range all {
		if i == num {
			break
		}
		ch <- ai
	}
	return ch
}

// UsableRelays parses relay addresses, one entry per relay with all its
// addresses, skipping those that do not parse or name no peer: a bad
// address in a charter must not keep a node from the good ones.
func UsableRelays(ss []string) []peer.AddrInfo {
	var good []string
	for _, a := range ss {
		if _, err := parseAddrInfos([]string{a}); err == nil {
			good = append(good, a)
		}
	}
	out, _ := parseAddrInfos(good)
	return out
}

func parseAddrInfos(ss []string) ([]peer.AddrInfo, error) {
	var out []peer.AddrInfo
	at := map[peer.ID]int{}
	for _, s := range ss {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		ai, err := peer.AddrInfoFromP2pAddr(a)
		if err != nil {
			return nil, fmt.Errorf("%q: %w (a relay address must end in /p2p/<peer ID>)", s, err)
		}
		if i, ok := at[ai.ID]; ok {
			out[i].Addrs = append(out[i].Addrs, ai.Addrs...)
			continue
		}
		at[ai.ID] = len(out)
		out = append(out, *ai)
	}
	return out, nil
}

func isSecureWS(a ma.Multiaddr) bool {
	if _, err := a.ValueForProtocol(ma.P_WSS); err == nil {
		return true
	}
	_, errTLS := a.ValueForProtocol(ma.P_TLS)
	_, errWS := a.ValueForProtocol(ma.P_WS)
	return errTLS == nil && errWS == nil
}

// PublicOnlyGater refuses outbound dials to private, loopback, link-local
// and unspecified addresses. Peers announce whatever addresses they like;
// a server that dialed them would scan its provider's internal network on
// their behalf (and look like an attacker to the provider). Inbound
// connections are not its concern.
type PublicOnlyGater struct{}

// InterceptPeerDial allows every peer; addresses are judged one by one.
func (PublicOnlyGater) InterceptPeerDial(peer.ID) bool { return true }

// InterceptAddrDial refuses non-public IP addresses. A relay circuit is
// judged by the relay's address, its first part. DNS names pass: they are
// resolved and the resulting addresses are gated again.
func (PublicOnlyGater) InterceptAddrDial(_ peer.ID, a ma.Multiaddr) bool {
	return !IsPrivateAddr(a)
}

// InterceptAccept allows every inbound connection.
func (PublicOnlyGater) InterceptAccept(network.ConnMultiaddrs) bool { return true }

// InterceptSecured allows every secured connection.
func (PublicOnlyGater) InterceptSecured(network.Direction, peer.ID, network.ConnMultiaddrs) bool {
	return true
}

// InterceptUpgraded allows every upgraded connection.
func (PublicOnlyGater) InterceptUpgraded(network.Conn) (bool, control.DisconnectReason) {
	return true, 0
}

// IsPrivateAddr says whether a's IP (its first component) is one a public
// server should not dial: RFC 1918 and other private or shared ranges,
// loopback, link-local, unspecified.
func IsPrivateAddr(a ma.Multiaddr) bool {
	if len(a) == 0 {
		return false
	}
	ip, err := manet.ToIP(a[:1])
	if err != nil {
		return false // not an IP address: DNS, or nothing we can judge
	}
	return ip.IsPrivate() || ip.IsLoopback() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsUnspecified() || cgnat.Contains(ip)
}

// cgnat is the carrier-grade NAT range (RFC 6598), private in all but name.
var cgnat = &net.IPNet{IP: net.IPv4(100, 64, 0, 0), Mask: net.CIDRMask(10, 32)}
