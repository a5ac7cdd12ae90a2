package transport_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/transport"
)

func newHost(t *testing.T, cfg transport.Config) host.Host {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	return newHostWithKey(t, cfg, sk)
}

// newHostWithKey is newHost with a given identity: a restart of the same
// node.
func newHostWithKey(t *testing.T, cfg transport.Config, sk crypto.PrivKey) host.Host {
	t.Helper()
	b, err := transport.Options(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(append(b.Options, libp2p.Identity(sk))...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func connectVia(t *testing.T, from, to host.Host, code int) {
	t.Helper()
	var addrs []ma.Multiaddr
	for _, a := range to.Addrs() {
		if _, err := a.ValueForProtocol(code); err == nil {
			addrs = append(addrs, a)
		}
	}
	if len(addrs) == 0 {
		t.Fatalf("%s listens on no address with protocol %d: %v", to.ID(), code, to.Addrs())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := from.Connect(ctx, peer.AddrInfo{ID: to.ID(), Addrs: addrs}); err != nil {
		t.Fatalf("connect over protocol %d: %v", code, err)
	}
}

func TestTCPAndQUICOnLoopback(t *testing.T) {
	listen := []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	a := newHost(t, transport.Config{Listen: listen, TCP: true, QUIC: true})
	b := newHost(t, transport.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, TCP: true})
	c := newHost(t, transport.Config{Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, QUIC: true})
	for _, addr := range a.Addrs() {
		if !strings.HasPrefix(addr.String(), "/ip4/127.0.0.1/") {
			t.Fatalf("listens beyond loopback: %s", addr)
		}
	}
	connectVia(t, b, a, ma.P_TCP)
	connectVia(t, c, a, ma.P_QUIC_V1)
	if got := a.Network().Connectedness(b.ID()); got != network.Connected {
		t.Fatalf("a–b over TCP: %v", got)
	}
	if got := a.Network().Connectedness(c.ID()); got != network.Connected {
		t.Fatalf("a–c over QUIC: %v", got)
	}
}

func TestDisabledTransportIsNotListenedOn(t *testing.T) {
	h := newHost(t, transport.Config{
		Listen: []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
		TCP:    true,
	})
	for _, a := range h.Addrs() {
		if _, err := a.ValueForProtocol(ma.P_QUIC_V1); err == nil {
			t.Fatalf("QUIC is off but the host listens on %s", a)
		}
	}
	if _, err := transport.Options(transport.Config{Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}, TCP: true}); err == nil {
		t.Fatal("a configuration that listens on nothing must be refused")
	}
	if _, err := transport.Options(transport.Config{Listen: []string{"not an address"}}); err == nil {
		t.Fatal("a malformed listen address must be refused")
	}
}

func TestBootstrapPeersAreProtected(t *testing.T) {
	sk, _, _ := crypto.GenerateEd25519Key(nil)
	boot, _ := peer.IDFromPrivateKey(sk)
	b, err := transport.Options(transport.Config{Listen: []string{"/ip4/127.0.0.1/tcp/0"}, Protected: []peer.ID{boot}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.ConnManager.Close()
	if !b.ConnManager.IsProtected(boot, transport.ProtectTag) {
		t.Fatal("bootstrap peer is not protected from pruning")
	}
}

// A peer may hold only as many streams of a limited protocol as the limit
// says; the next one is refused by the resource manager, not served.
func TestProtocolStreamLimitPerPeer(t *testing.T) {
	const proto = "/ceiba/test-limit/1.0.0"
	listen := []string{"/ip4/127.0.0.1/tcp/0"}
	server := newHost(t, transport.Config{Listen: listen, Protocols: []transport.ProtocolLimit{
		{ID: proto, Streams: 8, StreamsPerPeer: 1},
	}})
	client := newHost(t, transport.Config{Listen: listen})
	release := make(chan struct{})
	defer close(release)
	server.SetStreamHandler(proto, func(s network.Stream) {
		s.Write([]byte{1})
		<-release
		s.Reset()
	})
	connectVia(t, client, server, ma.P_TCP)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, err := client.NewStream(ctx, server.ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Reset()
	if _, err := io.ReadFull(first, make([]byte, 1)); err != nil {
		t.Fatalf("first stream: %v", err)
	}
	second, err := client.NewStream(ctx, server.ID(), proto)
	if err == nil {
		defer second.Reset()
		second.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err = io.ReadFull(second, make([]byte, 1))
	}
	if err == nil {
		t.Fatal("second concurrent stream from one peer was served despite a per-peer cap of 1")
	}
}

// addrsOver is h's listen addresses that carry protocol code and none of
// the protocols in not: a WebTransport address also carries /quic-v1, so
// asking for plain QUIC must exclude it.
func addrsOver(h host.Host, code int, not ...int) []ma.Multiaddr {
	var out []ma.Multiaddr
next:
	for _, a := range h.Addrs() {
		if _, err := a.ValueForProtocol(code); err != nil {
			continue
		}
		for _, n := range not {
			if _, err := a.ValueForProtocol(n); err == nil {
				continue next
			}
		}
		out = append(out, a)
	}
	return out
}

// dial connects from to to at addrs and returns the error, so a test can
// also assert that a dial fails.
func dial(from, to host.Host, addrs []ma.Multiaddr) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return from.Connect(ctx, peer.AddrInfo{ID: to.ID(), Addrs: addrs})
}

// connOver fails the test unless every connection from h to p runs over a
// multiaddr with protocol code, and there is at least one.
func connOver(t *testing.T, h host.Host, p peer.ID, code int) {
	t.Helper()
	conns := h.Network().ConnsToPeer(p)
	if len(conns) == 0 {
		t.Fatalf("no connection to %s", p)
	}
	for _, c := range conns {
		if _, err := c.RemoteMultiaddr().ValueForProtocol(code); err != nil {
			t.Fatalf("connection to %s over %s, not protocol %d", p, c.RemoteMultiaddr(), code)
		}
	}
}

// freeUDPPort returns a UDP port on loopback that was free a moment ago,
// for tests that must name one port twice (port 0 picks a new port for
// every listen address).
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// Two WebTransport-only hosts connect over WebTransport, and the listener
// announces the certificate hash a browser needs to dial it without a CA.
func TestWebTransportOnLoopback(t *testing.T) {
	listen := []string{"/ip4/127.0.0.1/udp/0/quic-v1/webtransport"}
	a := newHost(t, transport.Config{WebTransport: true, Listen: listen})
	b := newHost(t, transport.Config{WebTransport: true, Listen: listen})
	wt := addrsOver(a, ma.P_WEBTRANSPORT)
	if len(wt) == 0 {
		t.Fatalf("no WebTransport address: %v", a.Addrs())
	}
	for _, m := range wt {
		if _, err := m.ValueForProtocol(ma.P_CERTHASH); err != nil {
			t.Fatalf("WebTransport address without /certhash, undialable from a browser: %s", m)
		}
	}
	if err := dial(b, a, wt); err != nil {
		t.Fatalf("connect over WebTransport: %v", err)
	}
	connOver(t, b, a.ID(), ma.P_WEBTRANSPORT)
	connOver(t, a, b.ID(), ma.P_WEBTRANSPORT)

	// A stream carries bytes both ways: the session is usable, not just
	// handshaken.
	s := echo(t, b, a, "WebTransport")
	if _, err := s.Conn().RemoteMultiaddr().ValueForProtocol(ma.P_WEBTRANSPORT); err != nil {
		t.Fatalf("stream over %s, not WebTransport", s.Conn().RemoteMultiaddr())
	}
}

// echo opens a stream from client to server, which echoes it back, and
// fails the test unless the bytes come back: a connection over a
// transport is usable, not just handshaken. It returns the stream, whose
// connection says which transport carried it.
func echo(t *testing.T, client, server host.Host, over string) network.Stream {
	t.Helper()
	const proto = "/ceiba/test-echo/1.0.0"
	server.SetStreamHandler(proto, func(s network.Stream) {
		defer s.Close()
		io.Copy(s, s)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.NewStream(ctx, server.ID(), proto)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Reset() })
	if _, err := s.Write([]byte("hola")); err != nil {
		t.Fatal(err)
	}
	s.CloseWrite()
	if got, err := io.ReadAll(s); err != nil || string(got) != "hola" {
		t.Fatalf("echo over %s: %q, %v", over, got, err)
	}
	return s
}

// QUIC and WebTransport listen on one UDP port, as DefaultListen and the
// daemon's config have them, and each serves its own clients there. With
// QUIC off, the same two addresses still give a working WebTransport
// listener and no QUIC one.
func TestWebTransportSharesQUICPort(t *testing.T) {
	port := freeUDPPort(t)
	quicAddr := fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port)
	wtAddr := quicAddr + "/webtransport"
	// No transport flag: all five on, as in a zero Config.
	server := newHost(t, transport.Config{Listen: []string{quicAddr, wtAddr}})
	quicClient := newHost(t, transport.Config{QUIC: true, Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}})
	wtClient := newHost(t, transport.Config{WebTransport: true, Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1/webtransport"}})

	quicAddrs := addrsOver(server, ma.P_QUIC_V1, ma.P_WEBTRANSPORT)
	wtAddrs := addrsOver(server, ma.P_WEBTRANSPORT)
	if len(quicAddrs) == 0 || len(wtAddrs) == 0 {
		t.Fatalf("server lacks a QUIC or a WebTransport address: %v", server.Addrs())
	}
	for _, m := range append(quicAddrs, wtAddrs...) {
		if p, _ := m.ValueForProtocol(ma.P_UDP); p != strconv.Itoa(port) {
			t.Fatalf("%s is not on the shared port %d", m, port)
		}
	}
	if err := dial(quicClient, server, quicAddrs); err != nil {
		t.Fatalf("QUIC on the shared port: %v", err)
	}
	connOver(t, quicClient, server.ID(), ma.P_QUIC_V1)
	if err := dial(wtClient, server, wtAddrs); err != nil {
		t.Fatalf("WebTransport on the shared port: %v", err)
	}
	connOver(t, wtClient, server.ID(), ma.P_WEBTRANSPORT)
	server.Close()

	// QUIC off, WebTransport on, both addresses still listed: the QUIC one
	// is skipped and WebTransport owns the port alone.
	port = freeUDPPort(t)
	quicAddr = fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port)
	wtAddr = quicAddr + "/webtransport"
	wtOnly := newHost(t, transport.Config{WebTransport: true, Listen: []string{quicAddr, wtAddr}})
	if got := addrsOver(wtOnly, ma.P_QUIC_V1, ma.P_WEBTRANSPORT); len(got) != 0 {
		t.Fatalf("QUIC is off but the host listens on %v", got)
	}
	wtAddrs = addrsOver(wtOnly, ma.P_WEBTRANSPORT)
	if len(wtAddrs) == 0 {
		t.Fatalf("no WebTransport address with QUIC off: %v", wtOnly.Addrs())
	}
	if err := dial(wtClient, wtOnly, wtAddrs); err != nil {
		t.Fatalf("WebTransport with QUIC off: %v", err)
	}
	connOver(t, wtClient, wtOnly.ID(), ma.P_WEBTRANSPORT)
	// The plain QUIC address was never listened on: a QUIC client finds
	// nothing there (the WebTransport listener answers only HTTP/3).
	plain, _ := ma.NewMultiaddr(quicAddr)
	if err := dial(quicClient, wtOnly, []ma.Multiaddr{plain}); err == nil {
		t.Fatal("a QUIC client connected to a host with QUIC off")
	}
}

// The WebTransport flag, not the QUIC one, decides about /webtransport
// addresses, though they contain /quic-v1.
func TestWebTransportFlagJudgesWebTransportAddresses(t *testing.T) {
	both := []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/udp/0/quic-v1/webtransport"}
	h := newHost(t, transport.Config{QUIC: true, Listen: both})
	if got := addrsOver(h, ma.P_WEBTRANSPORT); len(got) != 0 {
		t.Fatalf("WebTransport is off but the host listens on %v", got)
	}
	if len(addrsOver(h, ma.P_QUIC_V1)) == 0 {
		t.Fatalf("QUIC is on but the host does not listen on it: %v", h.Addrs())
	}
	if _, err := transport.Options(transport.Config{WebTransport: true, Listen: both[:1]}); err == nil {
		t.Fatal("a WebTransport-only configuration with only a QUIC address listens on nothing and must be refused")
	}
	// The converse is what an order mistake in the check would miss: libp2p
	// silently skips a listen address it has no transport for, so only
	// Options can say that this configuration listens on nothing.
	if _, err := transport.Options(transport.Config{QUIC: true, Listen: both[1:]}); err == nil {
		t.Fatal("a QUIC-only configuration with only a WebTransport address listens on nothing and must be refused")
	}
}

// A browser without WebTransport dials WebRTC: QUIC, WebTransport and
// WebRTC listen on one UDP port, as the daemon's config has them, and
// each serves its own clients there. The WebRTC address carries the
// certificate hash a browser needs, and the hash is the same for the same
// key after a restart (an invite code carries it for months).
func TestWebRTCSharesQUICPort(t *testing.T) {
	port := freeUDPPort(t)
	quicAddr := fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port)
	rtcAddr := fmt.Sprintf("/ip4/127.0.0.1/udp/%d/webrtc-direct", port)
	sk, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	serverWith := func() host.Host {
		// No transport flag: all five on, as in a zero Config.
		return newHostWithKey(t, transport.Config{Listen: []string{quicAddr, quicAddr + "/webtransport", rtcAddr}}, sk)
	}
	server := serverWith()
	quicClient := newHost(t, transport.Config{QUIC: true, Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1"}})
	wtClient := newHost(t, transport.Config{WebTransport: true, Listen: []string{"/ip4/127.0.0.1/udp/0/quic-v1/webtransport"}})
	rtcClient := newHost(t, transport.Config{WebRTC: true, Listen: []string{"/ip4/127.0.0.1/udp/0/webrtc-direct"}})

	rtcAddrs := addrsOver(server, ma.P_WEBRTC_DIRECT)
	if len(rtcAddrs) == 0 {
		t.Fatalf("no WebRTC address: %v", server.Addrs())
	}
	hashes := map[string]bool{}
	for _, m := range append(addrsOver(server, ma.P_QUIC_V1), rtcAddrs...) {
		if p, _ := m.ValueForProtocol(ma.P_UDP); p != strconv.Itoa(port) {
			t.Fatalf("%s is not on the shared port %d", m, port)
		}
	}
	for _, m := range rtcAddrs {
		h, err := m.ValueForProtocol(ma.P_CERTHASH)
		if err != nil {
			t.Fatalf("WebRTC address without /certhash, undialable from a browser: %s", m)
		}
		hashes[h] = true
	}
	if err := dial(rtcClient, server, rtcAddrs); err != nil {
		t.Fatalf("WebRTC on the shared port: %v", err)
	}
	connOver(t, rtcClient, server.ID(), ma.P_WEBRTC_DIRECT)
	// The listener names an inbound WebRTC connection by its UDP address
	// alone; its state says the transport.
	for _, c := range server.Network().ConnsToPeer(rtcClient.ID()) {
		if tr := c.ConnState().Transport; tr != "webrtc-direct" {
			t.Fatalf("the server's connection from the WebRTC client runs over %q (%s)", tr, c.RemoteMultiaddr())
		}
	}
	if err := dial(quicClient, server, addrsOver(server, ma.P_QUIC_V1, ma.P_WEBTRANSPORT)); err != nil {
		t.Fatalf("QUIC on the shared port: %v", err)
	}
	connOver(t, quicClient, server.ID(), ma.P_QUIC_V1)
	if err := dial(wtClient, server, addrsOver(server, ma.P_WEBTRANSPORT)); err != nil {
		t.Fatalf("WebTransport on the shared port: %v", err)
	}
	connOver(t, wtClient, server.ID(), ma.P_WEBTRANSPORT)

	// A stream carries bytes both ways over WebRTC.
	echo(t, rtcClient, server, "WebRTC")

	server.Close()
	again := serverWith()
	for _, m := range addrsOver(again, ma.P_WEBRTC_DIRECT) {
		if h, _ := m.ValueForProtocol(ma.P_CERTHASH); !hashes[h] {
			t.Fatalf("after a restart with the same key the WebRTC certificate hash changed: %s, was %v", m, hashes)
		}
	}
}

// The WebRTC flag decides about /webrtc-direct addresses: off, the host
// does not listen there, and a configuration with only such an address
// is refused.
func TestWebRTCFlagJudgesWebRTCAddresses(t *testing.T) {
	both := []string{"/ip4/127.0.0.1/udp/0/quic-v1", "/ip4/127.0.0.1/udp/0/webrtc-direct"}
	h := newHost(t, transport.Config{QUIC: true, Listen: both})
	if got := addrsOver(h, ma.P_WEBRTC_DIRECT); len(got) != 0 {
		t.Fatalf("WebRTC is off but the host listens on %v", got)
	}
	if _, err := transport.Options(transport.Config{QUIC: true, Listen: both[1:]}); err == nil {
		t.Fatal("a QUIC-only configuration with only a WebRTC address listens on nothing and must be refused")
	}
	if _, err := transport.Options(transport.Config{WebRTC: true, Listen: both[:1]}); err == nil {
		t.Fatal("a WebRTC-only configuration with only a QUIC address listens on nothing and must be refused")
	}
}
