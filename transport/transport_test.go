package transport_test

import (
	"context"
	"io"
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
	b, err := transport.Options(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sk, _, err := crypto.GenerateEd25519Key(nil)
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
