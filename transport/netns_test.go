package transport_test

// Real hosts in network namespaces (internal/netnstest.TwoNATs): two peers
// behind separate NAT routers reach each other through a relay in a
// "public" namespace, then try a direct connection by hole punching
// (DCUtR). Behind cone NATs the punch must succeed; behind symmetric NATs
// it must fail, and the relayed connection must still carry their
// streams. Each namespace runs its own process (this test binary again,
// as TestNetnsHelper).

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ceiba-network/ceiba/internal/netnstest"
	"github.com/ceiba-network/ceiba/transport"
)

const echoProto = "/ceiba/test/echo/1.0.0"

// startPeers builds the topology with NATs of kind k, starts the relay and
// observers, then b and a, and waits for a to reach b through the relay.
// directWait is how long a then watches for a direct connection.
func startPeers(t *testing.T, k netnstest.NAT, directWait time.Duration) (ha, hb *netnstest.Proc) {
	if netnstest.InHelper() {
		t.Skip("inside a helper")
	}
	if testing.Short() {
		t.Skip("network namespaces: skipped in -short")
	}
	ns := netnstest.TwoNATs(t, k)
	relay := ns.Helper(ns.Pub, "TestNetnsHelper", map[string]string{netnstest.RoleEnv: "pub"})
	relayAddr := relay.Expect("RELAY", 20*time.Second)
	observers := relay.Expect("OBSERVERS", 5*time.Second)

	peerEnv := map[string]string{netnstest.RoleEnv: "peer", "CEIBA_RELAY": relayAddr, "CEIBA_OBSERVERS": observers,
		"CEIBA_DIRECT_WAIT": directWait.String()}
	hb = ns.Helper(ns.B, "TestNetnsHelper", peerEnv)
	bCircuit := hb.Expect("CIRCUIT", 30*time.Second)
	t.Logf("b is reachable through the relay at %s", bCircuit)
	peerEnv["CEIBA_TARGET"] = bCircuit
	ha = ns.Helper(ns.A, "TestNetnsHelper", peerEnv)
	ha.Expect("CIRCUIT", 30*time.Second)
	start := time.Now()
	if res := ha.Expect("RELAYED", 30*time.Second); !strings.HasPrefix(res, "ok") {
		t.Fatalf("a could not reach b through the relay: %s", res)
	}
	t.Logf("a reached b through the relay (%s after a got its circuit address; a first waits for its observed public address); a's own addresses: %s",
		time.Since(start).Round(time.Millisecond), ha.Last("OBSERVED"))
	return ha, hb
}

func TestRelayAndHolePunchAcrossNAT(t *testing.T) {
	ha, hb := startPeers(t, netnstest.Cone, 45*time.Second)
	start := time.Now()
	res := ha.Expect("DIRECT", 60*time.Second)
	if !strings.HasPrefix(res, "ok") {
		t.Fatalf("no direct connection after hole punching: %s\nb observed: %s\na observed: %s\nb's hole punching log:\n%s\na's hole punching log:\n%s",
			res, hb.Last("OBSERVED"), ha.Last("OBSERVED"), hb.LogTail(os.Getenv("CEIBA_NETNS_GREP"), 60), ha.LogTail(os.Getenv("CEIBA_NETNS_GREP"), 60))
	}
	t.Logf("a and b connected directly after hole punching (%s after the relayed connection): %s", time.Since(start).Round(time.Millisecond), res)
}

// Behind symmetric NATs (fully random ports) the same peers must not end
// up connected directly: this is the check that netnstest.Symmetric is
// the NAT the relay-only tests elsewhere (cmd/ceiba) claim it is, so that
// their "every connection was relayed" means something.
func TestHolePunchFailsAcrossSymmetricNAT(t *testing.T) {
	ha, hb := startPeers(t, netnstest.Symmetric, 20*time.Second)
	res := ha.Expect("DIRECT", 40*time.Second)
	if strings.HasPrefix(res, "ok") {
		t.Fatalf("a and b connected directly through symmetric NATs: %s\nb's hole punching log:\n%s", res, hb.LogTail("holepunch", 40))
	}
	t.Logf("no direct connection through symmetric NATs, as expected: %s", res)
	t.Logf("what a and b observed of themselves: a %s; b %s", ha.Last("OBSERVED"), hb.Last("OBSERVED"))
	t.Logf("b's hole punching log:\n%s", hb.LogTail("holepunch", 20))
	t.Logf("a's hole punching log:\n%s", ha.LogTail("holepunch", 20))
}

// TestNetnsHelper is not a test: it is the process the tests above start
// inside each namespace.
func TestNetnsHelper(t *testing.T) {
	switch os.Getenv("CEIBA_NETNS_ROLE") {
	case "pub":
		netnstest.ServePublic(t)
	case "peer":
		helperPeer(t)
	default:
		t.Skip("only run by the netns tests inside a namespace")
	}
}

func helperPeer(t *testing.T) {
	relays := strings.Split(os.Getenv("CEIBA_RELAY"), ",")
	h := netnstest.Host(t, transport.Config{Profile: transport.ProfileLaptop, ForceReachability: "private",
		Listen: []string{"/ip4/0.0.0.0/tcp/4001", "/ip4/0.0.0.0/udp/4001/quic-v1"}, TCP: true, QUIC: true,
		Relays: relays})
	defer h.Close()
	h.SetStreamHandler(echoProto, func(s network.Stream) {
		defer s.Close()
		io.Copy(s, io.LimitReader(s, 64))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, s := range strings.Split(os.Getenv("CEIBA_OBSERVERS"), ",") {
		ai, err := peer.AddrInfoFromString(s)
		if err == nil {
			h.Connect(ctx, *ai)
		}
	}
	var circuit string
	for circuit == "" && ctx.Err() == nil {
		for _, a := range h.Addrs() {
			if strings.Contains(a.String(), "/p2p-circuit") {
				circuit = netnstest.P2PAddr(h, a)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	netnstest.Say("CIRCUIT", "%s", circuit)
	go func() {
		for ctx.Err() == nil {
			var pub []string
			for _, a := range h.Addrs() {
				if !strings.Contains(a.String(), "p2p-circuit") {
					pub = append(pub, a.String())
				}
			}
			netnstest.Say("OBSERVED", "%v", pub)
			time.Sleep(2 * time.Second)
		}
	}()
	target := os.Getenv("CEIBA_TARGET")
	if target == "" {
		io.Copy(io.Discard, os.Stdin)
		return
	}
	// Hole punching starts on b's side the moment a's relayed connection
	// arrives, and a answers only once its hole-punching service has seen
	// a public address (it polls every few hundred milliseconds). Dialing
	// before that loses the one attempt b makes. Behind a symmetric NAT
	// no public address is ever confirmed (each observer sees another
	// port), so a goes ahead after 15 s without one.
	publicBy := time.Now().Add(15 * time.Second)
	for ctx.Err() == nil && !hasPublicDirectAddr(h) && time.Now().Before(publicBy) {
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(2 * time.Second)
	ai, err := peer.AddrInfoFromString(target)
	if err != nil {
		netnstest.Say("RELAYED", "fail: %v", err)
		return
	}
	if err := h.Connect(ctx, *ai); err != nil {
		netnstest.Say("RELAYED", "fail: connect: %v", err)
		return
	}
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "test"), ai.ID, echoProto)
	if err != nil {
		netnstest.Say("RELAYED", "fail: stream: %v", err)
		return
	}
	s.Write([]byte("hola"))
	s.CloseWrite()
	got, err := io.ReadAll(s)
	if err != nil || string(got) != "hola" {
		netnstest.Say("RELAYED", "fail: echo %q %v", got, err)
		return
	}
	netnstest.Say("RELAYED", "ok over %s", s.Conn().RemoteMultiaddr())
	directWait, err := time.ParseDuration(os.Getenv("CEIBA_DIRECT_WAIT"))
	if err != nil {
		netnstest.Say("DIRECT", "fail: CEIBA_DIRECT_WAIT: %v", err)
		return
	}
	deadline := time.Now().Add(directWait)
	for time.Now().Before(deadline) {
		for _, c := range h.Network().ConnsToPeer(ai.ID) {
			if !strings.Contains(c.RemoteMultiaddr().String(), "p2p-circuit") {
				netnstest.Say("DIRECT", "ok %s", c.RemoteMultiaddr())
				io.Copy(io.Discard, os.Stdin)
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	var conns []string
	for _, c := range h.Network().ConnsToPeer(ai.ID) {
		conns = append(conns, c.RemoteMultiaddr().String())
	}
	netnstest.Say("DIRECT", "fail: after %s only %v; own addrs %v", directWait, conns, h.Addrs())
	io.Copy(io.Discard, os.Stdin)
}

func hasPublicDirectAddr(h host.Host) bool {
	for _, a := range h.Addrs() {
		if !strings.Contains(a.String(), "p2p-circuit") && !transport.IsPrivateAddr(a) {
			return true
		}
	}
	return false
}
