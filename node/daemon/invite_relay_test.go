package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	"github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/internal/netnstest"
	"github.com/ceiba-network/ceiba/node/api"
	"github.com/ceiba-network/ceiba/transport"
)

// An invite whose only address is the inviter's relay circuit is redeemed
// through the relay, as for an inviter behind a symmetric NAT. It failed
// with "no transport for protocol" while the redeeming host was built with
// libp2p.NoListenAddrs alone, which also leaves out the relay transport.
// (cmd/ceiba's TestOrgsBehindSymmetricNATsThroughRelay is the same story
// behind real NATs.)
func TestInviteThroughRelayOnly(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	relay := netnstest.Host(t, transport.Config{Profile: transport.ProfileVPS, ForceReachability: "public",
		AllowPrivateDials: true, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, TCP: true})
	t.Cleanup(func() { relay.Close() })
	relayInfo := peer.AddrInfo{ID: relay.ID(), Addrs: relay.Addrs()}

	// The relay is one the steward's node is configured to use, as an
	// inviter behind NAT would be: a node cuts a peer that offers no
	// admission proof, and keeps only the relays it uses (until session
	// 40 an unconfigured relay was kept 10 s as a guest, which this test
	// leaned on).
	steward := startDaemonWith(t, "steward", func(c *Config) {
		c.Node.Relays = []string{netnstest.P2PAddr(relay, relay.Addrs()[0])}
	})
	if _, err := steward.CreateNetwork(ctx, api.NetworkRequest{Name: "Red", Threshold: 1}); err != nil {
		t.Fatal(err)
	}
	inv, err := steward.CreateInvite(api.InviteRequest{Role: "member", Expires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	code, err := parseCode(inv.Code)
	if err != nil {
		t.Fatal(err)
	}
	h := steward.Node().Host()
	if err := h.Connect(ctx, relayInfo); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Reserve(ctx, h, relayInfo); err != nil {
		t.Fatalf("reserving a slot on the relay: %v", err)
	}
	code.Addrs = [][]byte{multiaddr.StringCast(netnstest.P2PAddr(relay, relay.Addrs()[0]) + "/p2p-circuit").Bytes()}

	org := startTestDaemon(t, "org")
	if _, err := org.AcceptInvite(ctx, api.AcceptRequest{Code: code.String(), Name: "Colectivo"}); err != nil {
		t.Fatalf("invite through the relay: %v", err)
	}
	// The admission proves the steward answered the invite; the org's
	// node may have found the steward's loopback address since, so its
	// role is not checked here.
	st := steward.Node().State()
	if got := st.Stats().Members; got != 1 {
		t.Fatalf("steward holds %d members after the invite, want 1", got)
	}
}
