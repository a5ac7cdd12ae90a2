// Package transport turns a Ceiba node's transport settings into libp2p host
// options: which addresses and transports to listen on, how many
// connections, streams and bytes the host may spend, and which peers the
// connection manager must never prune.
//
// It owns only the shape of the host. It never knows about records,
// networks or keys (package directory owns those) and never opens a stream
// itself (package node does). Its one rule is that a node's resources are
// bounded however hostile its peers are: every host built from these options
// has a resource manager and a connection manager.
//
// A Profile (laptop, vps, lowdata; profile.go) picks limits and the NAT
// traversal the host uses or offers: AutoNAT, hole punching, circuit relay
// v2, and for servers a gater that never dials private addresses.
//
// Byte-rate caps (ratelimit.go) are the one limit libp2p has no option
// for: LimitRate wraps a built host so its streams share a token bucket.
//
// There is deliberately no private-network (pnet) pre-shared key: libp2p's
// PSK rules out QUIC and WebTransport, and a network's privacy comes from
// sealing every record, not from the transport.
package transport

import (
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	rcmgr "github.com/libp2p/go-libp2p/p2p/host/resource-manager"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	libp2pwebrtc "github.com/libp2p/go-libp2p/p2p/transport/webrtc"
	ws "github.com/libp2p/go-libp2p/p2p/transport/websocket"
	webtransport "github.com/libp2p/go-libp2p/p2p/transport/webtransport"
	ma "github.com/multiformats/go-multiaddr"
)

// Config says how a node reaches and is reached by its peers. The zero
// value is usable: the default listen addresses on every transport, limits
// scaled to the machine.
type Config struct {
	// Listen lists multiaddrs to listen on. Empty means DefaultListen.
	Listen []string

	// Transports to enable. If all five are false, all five are on: a
	// zero Config must not produce a host that cannot talk.
	//
	// WebTransport runs over QUIC inside HTTP/3, so a browser can dial a
	// node directly: the node serves a self-signed certificate and
	// announces its hash (/certhash) in the address, no CA needed. A
	// /quic-v1/webtransport address may share its UDP port with a
	// /quic-v1 one; WebTransport needs no QUIC listen address of its own.
	//
	// WebRTC (/udp/N/webrtc-direct) is the browsers' other way in, for
	// those without WebTransport (Safari, some Android browsers): a data
	// channel over DTLS, with the certificate's hash in the address as
	// for WebTransport. Its certificate is derived from the host's key,
	// so the hash does not change while the key does not. A
	// /webrtc-direct address may share its UDP port with a /quic-v1 one
	// (libp2p tells QUIC packets from STUN and DTLS ones).
	TCP, QUIC, WebSocket, WebTransport, WebRTC bool

	// ConnLow and ConnHigh are the connection manager's watermarks: above
	// High it prunes down to Low, least useful peers first. Zero means
	// DefaultConnLow / DefaultConnHigh.
	ConnLow, ConnHigh int
	// ConnGrace shields new connections from pruning. Zero means one minute.
	ConnGrace time.Duration

	// MaxMemory and MaxFD bound what the libp2p stack may use in total.
	// Zero scales to the machine (an eighth of its memory, half its file
	// descriptors), as libp2p's defaults do.
	MaxMemory int64
	MaxFD     int

	// SendRate and RecvRate cap the bytes per second the node's streams
	// send and receive (see LimitRate for what the cap covers). Zero
	// takes the profile's cap (lowdata has one); negative means no cap.
	SendRate, RecvRate int64

	// Protected peers are never pruned by the connection manager: the
	// bootstrap peers, which a node needs to find its way back into the
	// network after a partition.
	Protected []peer.ID

	// Protocols bounds the streams of application protocols, so one peer
	// cannot take every stream slot of an expensive protocol.
	Protocols []ProtocolLimit

	// StreamGate, if set, passes judgement on every stream's protocol,
	// inbound and outbound (see StreamGate): the node's admission.
	StreamGate StreamGate
	// DenyPeer, if set, names peers whose connections are refused right
	// after the security handshake and who are not dialed.
	DenyPeer func(peer.ID) bool
	// DenyAccept, if set, names remote addresses whose inbound
	// connections are refused as they come, before the security
	// handshake (which costs the node as much as the peer).
	DenyAccept func(ma.Multiaddr) bool
	// RelayACL, if set, decides who may reserve a slot on and open
	// circuits through this node's relay service.
	RelayACL relayv2.ACLFilter

	// The fields below are NAT traversal and operations; see profile.go.
	// Profile fills those a profile decides and the limits above that are
	// still zero; explicit settings win.

	// Profile is laptop, vps, lowdata, or empty: no profile, only what the
	// fields say (tests and embedders).
	Profile Profile
	// AutoNAT asks peers whether this node is reachable (AutoNAT v2
	// client); NATService answers such questions for others, which only a
	// node with a public address should do.
	AutoNAT, NATService bool
	// HolePunching lets two NATed nodes that met through a relay try a
	// direct connection (DCUtR).
	HolePunching bool
	// RelayService offers circuit relay v2 to NATed peers, with the limits
	// of RelayResources. libp2p starts it only once the node finds itself
	// publicly reachable.
	RelayService bool
	// NoRelayService refuses to offer a relay whatever the profile (or, in
	// package node, the steward role) would do: an operator's way out.
	NoRelayService bool
	// Relays are static relays (multiaddrs ending in /p2p/<peer ID>) a
	// NATed node reserves a slot on so it can be reached. They are
	// protected from pruning like bootstrap peers.
	Relays []string
	// RelayFeed, if set, supplies relays learned while the node runs (the
	// charter's, which an amendment can change), in the form of Relays.
	// It is asked whenever the node holds fewer relays than it wants, at
	// most every RelayFeedInterval (zero: 30 s); addresses that do not
	// parse are skipped. Fed relays are protected while it lists them.
	RelayFeed         func() []string
	RelayFeedInterval time.Duration
	// ForceReachability skips AutoNAT's verdict: "public" for a server the
	// operator knows is reachable, "private" for a node known to be behind
	// NAT (it reserves relay slots at once). Empty lets AutoNAT decide.
	ForceReachability string
	// AllowPrivateDials lifts the vps profile's refusal to dial private,
	// loopback and link-local addresses (a server must not be made to
	// probe its provider's internal network by addresses peers announce).
	AllowPrivateDials bool
	// MDNS finds peers on the local network. The host does not run it;
	// package node starts it (it needs the host), so it is only read there.
	MDNS bool
	// WSSCert and WSSKey are PEM files of a TLS certificate for secure
	// WebSocket listen addresses (/tls/ws or /wss). Without them a secure
	// WebSocket listen address is refused.
	WSSCert, WSSKey string
}

// ProtocolLimit caps the streams of one protocol, in total and per peer.
type ProtocolLimit struct {
	ID             protocol.ID
	Streams        int   // concurrent streams of this protocol, all peers
	StreamsPerPeer int   // concurrent streams of this protocol with one peer, each way
	Memory         int64 // bytes its streams may reserve in total; 0: 16 MiB
	MemoryPerPeer  int64 // bytes its streams may reserve per peer; 0: 4 MiB
}

// Defaults.
const (
	DefaultConnLow  = 64
	DefaultConnHigh = 128
	// ProtectTag is the connection-manager tag bootstrap peers carry.
	ProtectTag = "ceiba-bootstrap"
	// RelayTag is the connection-manager tag static relays carry.
	RelayTag = "ceiba-relay"
)

// DefaultListen is where a node listens when its configuration says
// nothing: every interface, the usual libp2p port, on each transport.
// WebTransport and WebRTC share QUIC's UDP port: libp2p demultiplexes
// the three on one socket, so they cost no extra port to open in a
// firewall.
var DefaultListen = []string{
	"/ip4/0.0.0.0/tcp/4001",
	"/ip4/0.0.0.0/udp/4001/quic-v1",
	"/ip4/0.0.0.0/udp/4001/quic-v1/webtransport",
	"/ip4/0.0.0.0/udp/4001/webrtc-direct",
	"/ip4/0.0.0.0/tcp/4002/ws",
	"/ip6/::/tcp/4001",
	"/ip6/::/udp/4001/quic-v1",
	"/ip6/::/udp/4001/quic-v1/webtransport",
	"/ip6/::/udp/4001/webrtc-direct",
}

// NeutralAgentVersion is the agent version identify reports.
const NeutralAgentVersion = "github.com/libp2p/go-libp2p"

// Built is what Options produces: the options to pass to libp2p.New and
// the connection manager they install, so the caller can protect more peers
// later.
type Built struct {
	Options     []libp2p.Option
	ConnManager *connmgr.BasicConnMgr
	// Bandwidth counts the bytes the host sends and receives, by protocol
	// and peer. It measures; it does not limit.
	Bandwidth *metrics.BandwidthCounter
	// Profile is the profile the options were built for, after defaults.
	Profile Profile
}

// Options turns cfg into libp2p options. It does not set the host's
// identity; the caller adds libp2p.Identity with its own persistent key.
func Options(cfg Config) (Built, error) {
	cfg, err := cfg.withProfile()
	if err != nil {
		return Built{}, err
	}
	on := enabled{tcp: cfg.TCP, quic: cfg.QUIC, ws: cfg.WebSocket, wt: cfg.WebTransport, webrtc: cfg.WebRTC}
	if on == (enabled{}) {
		on = enabled{tcp: true, quic: true, ws: true, wt: true, webrtc: true}
	}
	listen := cfg.Listen
	if len(listen) == 0 {
		listen = DefaultListen
	}
	var addrs []ma.Multiaddr
	secureWS := false
	for _, s := range listen {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			return Built{}, fmt.Errorf("transport: listen address %q: %w", s, err)
		}
		if !on.listens(a) {
			// Listening on a transport that is switched off would fail
			// at start with an obscure error; skipping it says what the
			// configuration asked for.
			continue
		}
		secureWS = secureWS || isSecureWS(a)
		addrs = append(addrs, a)
	}
	if len(addrs) == 0 {
		return Built{}, errors.New("transport: no listen address matches an enabled transport")
	}

	low, high := cfg.ConnLow, cfg.ConnHigh
	if low <= 0 {
		low = DefaultConnLow
	}
	if high <= 0 {
		high = DefaultConnHigh
	}
	if high < low {
		return Built{}, fmt.Errorf("transport: connection high watermark %d below low watermark %d", high, low)
	}
	grace := cfg.ConnGrace
	if grace <= 0 {
		grace = time.Minute
	}
	relays, err := parseAddrInfos(cfg.Relays)
	if err != nil {
		return Built{}, fmt.Errorf("transport: relay: %w", err)
	}
	var wsOpts []any
	if secureWS {
		if cfg.WSSCert == "" || cfg.WSSKey == "" {
			return Built{}, errors.New("transport: a secure WebSocket listen address needs a certificate and key (WSSCert, WSSKey)")
		}
		cert, err := tls.LoadX509KeyPair(cfg.WSSCert, cfg.WSSKey)
		if err != nil {
			return Built{}, fmt.Errorf("transport: secure WebSocket certificate: %w", err)
		}
		wsOpts = append(wsOpts, ws.WithTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	}

	cm, err := connmgr.NewConnManager(low, high, connmgr.WithGracePeriod(grace))
	if err != nil {
		return Built{}, fmt.Errorf("transport: connection manager: %w", err)
	}
	for _, p := range cfg.Protected {
		cm.Protect(p, ProtectTag)
	}
	for _, r := range relays {
		cm.Protect(r.ID, RelayTag)
	}

	rm, err := resourceManager(cfg)
	if err != nil {
		cm.Close()
		return Built{}, err
	}
	if cfg.StreamGate != nil {
		rm = gatedRM{ResourceManager: rm, gate: cfg.StreamGate}
	}

	bw := metrics.NewBandwidthCounter()
	opts := []libp2p.Option{
		libp2p.ListenAddrs(addrs...),
		libp2p.ConnectionManager(cm),
		libp2p.ResourceManager(rm),
		// libp2p's own collectors would register on the global registry
		// (and collide between nodes in one test); the node exports what
		// operators need through its own collector.
		libp2p.DisableMetrics(),
		libp2p.BandwidthReporter(bw),
		// Identify would otherwise announce the main module's path
		// (github.com/ceiba-network/ceiba@…) to every peer that connects,
		// naming the software and so the people who run it. This is what
		// any go-libp2p program built without module information says.
		libp2p.UserAgent(NeutralAgentVersion),
	}
	opts = append(opts, natOptions(cfg, relays, cm)...)
	if on.tcp {
		opts = append(opts, libp2p.Transport(tcp.NewTCPTransport))
	}
	if on.quic {
		opts = append(opts, libp2p.Transport(libp2pquic.NewTransport))
	}
	if on.ws {
		opts = append(opts, libp2p.Transport(ws.New, wsOpts...))
	}
	if on.wt {
		// webtransport.New takes libp2p's shared quicreuse connection
		// manager, which the host provides whether or not the QUIC
		// transport is on; that shared manager is what lets both listen
		// on one UDP port.
		opts = append(opts, libp2p.Transport(webtransport.New))
	}
	if on.webrtc {
		// Like every transport here, it takes the host's connection
		// gater and resource manager: a browser on WebRTC is refused,
		// counted and held for admission as on any other transport.
		opts = append(opts, libp2p.Transport(libp2pwebrtc.New))
	}
	return Built{Options: opts, ConnManager: cm, Bandwidth: bw, Profile: cfg.Profile}, nil
}

// enabled is the set of transports a host runs.
type enabled struct{ tcp, quic, ws, wt, webrtc bool }

// listens reports whether a is an address of an enabled transport.
func (on enabled) listens(a ma.Multiaddr) bool {
	has := func(code int) bool {
		_, err := a.ValueForProtocol(code)
		return err == nil
	}
	// Most specific first: a WebSocket address also contains /tcp, and a
	// WebTransport address also contains /quic-v1.
	switch {
	case has(ma.P_WS) || has(ma.P_WSS):
		return on.ws
	case has(ma.P_WEBTRANSPORT):
		return on.wt
	case has(ma.P_WEBRTC_DIRECT):
		return on.webrtc
	case has(ma.P_QUIC_V1):
		return on.quic
	case has(ma.P_TCP):
		return on.tcp
	}
	// Anything else (a relay circuit, say) is not ours to judge.
	return true
}

// resourceManager builds libp2p's resource manager from its defaults, scaled
// to cfg's budget, with the application protocols' caps added.
func resourceManager(cfg Config) (network.ResourceManager, error) {
	limits := rcmgr.DefaultLimits
	libp2p.SetDefaultServiceLimits(&limits)
	for _, p := range cfg.Protocols {
		if p.ID == "" || p.Streams <= 0 || p.StreamsPerPeer <= 0 {
			return nil, fmt.Errorf("transport: protocol limit %q needs a protocol and positive stream caps", p.ID)
		}
		mem, memPeer := p.Memory, p.MemoryPerPeer
		if mem <= 0 {
			mem = 16 << 20
		}
		if memPeer <= 0 {
			memPeer = 4 << 20
		}
		limits.AddProtocolLimit(p.ID,
			rcmgr.BaseLimit{Streams: p.Streams, StreamsInbound: p.Streams, StreamsOutbound: p.Streams, Memory: mem},
			rcmgr.BaseLimitIncrease{})
		limits.AddProtocolPeerLimit(p.ID,
			rcmgr.BaseLimit{Streams: 2 * p.StreamsPerPeer, StreamsInbound: p.StreamsPerPeer, StreamsOutbound: p.StreamsPerPeer, Memory: memPeer},
			rcmgr.BaseLimitIncrease{})
	}
	var concrete rcmgr.ConcreteLimitConfig
	if cfg.MaxMemory == 0 && cfg.MaxFD == 0 {
		concrete = limits.AutoScale()
	} else {
		mem, fd := cfg.MaxMemory, cfg.MaxFD
		if mem <= 0 {
			mem = 256 << 20
		}
		if fd <= 0 {
			fd = 512
		}
		concrete = limits.Scale(mem, fd)
	}
	rm, err := rcmgr.NewResourceManager(rcmgr.NewFixedLimiter(concrete))
	if err != nil {
		return nil, fmt.Errorf("transport: resource manager: %w", err)
	}
	return rm, nil
}
