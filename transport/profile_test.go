package transport_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/internal/testcert"
	"github.com/ceiba-network/ceiba/transport"
)

func TestProfileLimits(t *testing.T) {
	low := transport.ProfileLowData.Limits()
	lap := transport.ProfileLaptop.Limits()
	vps := transport.ProfileVPS.Limits()
	if !(low.ConnHigh < lap.ConnHigh && lap.ConnHigh < vps.ConnHigh) {
		t.Fatalf("connection caps not ordered lowdata < laptop < vps: %d %d %d", low.ConnHigh, lap.ConnHigh, vps.ConnHigh)
	}
	if low.MaxMemory == 0 || low.MaxFD == 0 {
		t.Fatal("lowdata must have a fixed resource budget")
	}
	if _, err := transport.Options(transport.Config{Profile: "desktop"}); err == nil {
		t.Fatal("an unknown profile was accepted")
	}
	for _, p := range []transport.Profile{transport.ProfileLaptop, transport.ProfileVPS, transport.ProfileLowData} {
		h := newHost(t, transport.Config{Profile: p, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, AllowPrivateDials: true})
		if len(h.Addrs()) == 0 {
			t.Fatalf("%s host listens nowhere", p)
		}
	}
}

// A vps node refuses to dial private and loopback addresses peers give
// it, unless the configuration allows it.
func TestVPSRefusesPrivateDials(t *testing.T) {
	listen := []string{"/ip4/127.0.0.1/tcp/0"}
	target := newHost(t, transport.Config{Listen: listen})
	vps := newHost(t, transport.Config{Profile: transport.ProfileVPS, Listen: listen})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := vps.Connect(ctx, peer.AddrInfo{ID: target.ID(), Addrs: target.Addrs()})
	if err == nil {
		t.Fatal("a vps node dialed a loopback address")
	}
	allowed := newHost(t, transport.Config{Profile: transport.ProfileVPS, Listen: listen, AllowPrivateDials: true})
	if err := allowed.Connect(ctx, peer.AddrInfo{ID: target.ID(), Addrs: target.Addrs()}); err != nil {
		t.Fatalf("AllowPrivateDials: %v", err)
	}
	// Inbound connections from private addresses are not the gater's
	// concern: a NATed laptop on the same LAN as a server still gets in.
	if err := target.Connect(ctx, peer.AddrInfo{ID: vps.ID(), Addrs: vps.Addrs()}); err != nil {
		t.Fatalf("inbound to a vps node: %v", err)
	}
}

func TestIsPrivateAddr(t *testing.T) {
	for s, want := range map[string]bool{
		"/ip4/10.1.2.3/tcp/1":             true,
		"/ip4/192.168.1.1/udp/1":          true,
		"/ip4/127.0.0.1/tcp/1":            true,
		"/ip4/100.64.1.1/tcp/1":           true,
		"/ip4/169.254.1.1/tcp/1":          true,
		"/ip4/0.0.0.0/tcp/1":              true,
		"/ip6/::1/tcp/1":                  true,
		"/ip6/fe80::1/tcp/1":              true,
		"/ip6/fd00::1/tcp/1":              true,
		"/ip4/203.0.113.9/tcp/1":          false,
		"/ip6/2001:db8::1/tcp/1":          false,
		"/dns4/example.org/tcp/443":       false,
		"/ip4/10.0.0.1/tcp/1/p2p-circuit": true,
	} {
		if got := transport.IsPrivateAddr(ma.StringCast(s)); got != want {
			t.Errorf("IsPrivateAddr(%s) = %v, want %v", s, got, want)
		}
	}
}

func TestRelaysAreProtectedAndValidated(t *testing.T) {
	sk, _, _ := crypto.GenerateEd25519Key(nil)
	rid, _ := peer.IDFromPrivateKey(sk)
	b, err := transport.Options(transport.Config{
		Listen: []string{"/ip4/127.0.0.1/tcp/0"},
		Relays: []string{"/ip4/203.0.113.7/tcp/4001/p2p/" + rid.String(), "/ip4/203.0.113.7/udp/4001/quic-v1/p2p/" + rid.String()},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer b.ConnManager.Close()
	if !b.ConnManager.IsProtected(rid, transport.RelayTag) {
		t.Fatal("static relay is not protected from pruning")
	}
	if _, err := transport.Options(transport.Config{Relays: []string{"/ip4/203.0.113.7/tcp/4001"}}); err == nil || !strings.Contains(err.Error(), "/p2p/") {
		t.Fatalf("a relay without a peer ID: %v", err)
	}
}

func TestSecureWebSocketNeedsACertificate(t *testing.T) {
	listen := []string{"/ip4/127.0.0.1/tcp/0/tls/ws"}
	if _, err := transport.Options(transport.Config{Listen: listen}); err == nil {
		t.Fatal("a secure WebSocket address without a certificate was accepted")
	}
	cert, key, _ := testcert.SelfSigned(t)
	h := newHost(t, transport.Config{Listen: listen, WSSCert: cert, WSSKey: key})
	found := false
	for _, a := range h.Addrs() {
		found = found || strings.Contains(a.String(), "/tls/") && strings.Contains(a.String(), "/ws")
	}
	if !found {
		t.Fatalf("no secure WebSocket address: %v", h.Addrs())
	}
}

// A public vps host relays (it speaks the relay's hop protocol) unless
// NoRelayService says no.
func TestVPSRelayCanBeTurnedOff(t *testing.T) {
	hop := protocol.ID("/libp2p/circuit/relay/0.2.0/hop")
	speaks := func(h host.Host) bool { return slices.Contains(h.Mux().Protocols(), hop) }
	cfg := transport.Config{Profile: transport.ProfileVPS, ForceReachability: "public", Listen: []string{"/ip4/127.0.0.1/tcp/0"}}
	relay := newHost(t, cfg)
	deadline := time.Now().Add(10 * time.Second)
	for !speaks(relay) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if !speaks(relay) {
		t.Fatal("a public vps host offers no relay")
	}
	cfg.NoRelayService = true
	quiet := newHost(t, cfg)
	time.Sleep(500 * time.Millisecond) // the relay starts as soon as the host is public
	if speaks(quiet) {
		t.Fatal("NoRelayService: the vps host offers a relay anyway")
	}
}
