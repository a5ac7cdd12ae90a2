package daemon

import (
	"context"
	"crypto/rand"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	circuitpb "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	circuitproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	"github.com/libp2p/go-msgio/pbio"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/node/api"
)

// keylessTCPHost is a bare TCP host that holds no key of any network.
func keylessTCPHost(t *testing.T) host.Host {
	t.Helper()
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	h, err := libp2p.New(libp2p.Identity(sk), libp2p.NoListenAddrs, libp2p.Transport(tcp.NewTCPTransport))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// plainTCPAddrs returns h's TCP addresses that are not WebSocket ones.
func plainTCPAddrs(h host.Host) []ma.Multiaddr {
	var addrs []ma.Multiaddr
	for _, a := range h.Addrs() {
		if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			if _, err := a.ValueForProtocol(ma.P_WS); err != nil {
				addrs = append(addrs, a)
			}
		}
	}
	return addrs
}

// hopConnect asks the relay at relay, from h, for a circuit to dest and
// returns the relay's status.
func hopConnect(ctx context.Context, h host.Host, relay, dest peer.ID) (circuitpb.Status, error) {
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "hop"), relay, circuitproto.ProtoIDv2Hop)
	if err != nil {
		return 0, err
	}
	defer s.Reset()
	s.SetDeadline(time.Now().Add(10 * time.Second))
	w := pbio.NewDelimitedWriter(s)
	if err := w.WriteMsg(&circuitpb.HopMessage{Type: circuitpb.HopMessage_CONNECT.Enum(), Peer: &circuitpb.Peer{Id: []byte(dest)}}); err != nil {
		return 0, err
	}
	var resp circuitpb.HopMessage
	if err := pbio.NewDelimitedReader(s, 4096).ReadMsg(&resp); err != nil {
		return 0, err
	}
	return resp.GetStatus(), nil
}

// relayingStewardWithMember starts a publicly reachable steward's node,
// which offers a relay, and an admitted member organization's node
// connected to it.
func relayingStewardWithMember(t *testing.T) (steward, org *Daemon) {
	t.Helper()
	ctx := context.Background()
	public := func(c *Config) { c.Node.Reachability = "public" }
	steward = startDaemonWith(t, "steward", public)
	if _, err := steward.CreateNetwork(ctx, api.NetworkRequest{Name: "Red", Threshold: 1}); err != nil {
		t.Fatal(err)
	}
	org = startDaemonWith(t, "org", public)
	inv, err := steward.CreateInvite(api.InviteRequest{Role: "member", Expires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := org.AcceptInvite(ctx, api.AcceptRequest{Code: inv.Code, Name: "Colectivo"}); err != nil {
		t.Fatal(err)
	}
	sh, member := steward.Node().Host(), org.Node().Host().ID()
	for deadline := time.Now().Add(20 * time.Second); !steward.Node().OffersRelay() || sh.Network().Connectedness(member) != network.Connected ||
		!org.isMember(org.Node().State()); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the steward's node offers a relay: %v; the member is connected: %v", steward.Node().OffersRelay(), sh.Network().Connectedness(member))
		}
	}
	return steward, org
}

// A keyless outsider that knows a steward's address asks its relay for
// circuits to peer IDs it names. The answer must not tell an admitted
// member's peer from a peer of no network (DESIGN.md, adversary 2:
// nothing links a node to its network); peer IDs are no secret, as any
// handshake with a node's address shows one. The relay used to refuse an
// unadmitted requester a circuit to a peer that is not admitted
// (PERMISSION_DENIED) before it looked for a reservation, and so answered
// NO_RESERVATION for the member alone.
func TestStewardRelayAnswersOutsidersAlikeForMembersAndStrangers(t *testing.T) {
	ctx := context.Background()
	steward, org := relayingStewardWithMember(t)
	sh, member := steward.Node().Host(), org.Node().Host().ID()
	time.Sleep(6 * time.Second) // past any admission in progress

	addrs := plainTCPAddrs(sh)
	stranger, other := keylessTCPHost(t), keylessTCPHost(t) // other: a peer of no network
	ask := func(dest peer.ID) string {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		stranger.Network().(*swarm.Swarm).Backoff().Clear(sh.ID())
		if err := stranger.Connect(cctx, peer.AddrInfo{ID: sh.ID(), Addrs: addrs}); err != nil {
			return "connect: " + err.Error()
		}
		st, err := hopConnect(cctx, stranger, sh.ID(), dest)
		if err != nil {
			return "hop: " + err.Error()
		}
		return st.String()
	}
	asMember, asOther := ask(member), ask(other.ID())
	t.Logf("circuit to the admitted member: %s; to a peer of no network: %s", asMember, asOther)
	if asMember != asOther {
		t.Fatalf("a keyless outsider tells an admitted peer from a stranger by the steward's relay: %s against %s", asMember, asOther)
	}
}
