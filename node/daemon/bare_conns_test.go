package daemon

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/node"
	"github.com/ceiba-network/ceiba/node/api"
)

// TestBareConnectionsDoNotLockOutInvitees: a host that knows only a node's
// address, holds no key and never passes admission keeps 120 bare
// connections to an inviting node from 30 addresses (each reconnects when
// it is cut). The node keeps at most 64 proof-less "guests" (maxGuests);
// when every proof-less connection counted as one, it cut any further
// proof-less peer at once, an invitee's short-lived host among them, so
// while the outsider held the slots, invitees could not redeem their
// codes (a phone's join, a new organization's join). A guest is now a
// peer that opened the invite protocol.
func TestBareConnectionsDoNotLockOutInvitees(t *testing.T) {
	ctx := context.Background()
	steward := startTestDaemon(t, "steward")
	if _, err := steward.CreateNetwork(ctx, api.NetworkRequest{Name: "Red", Threshold: 1}); err != nil {
		t.Fatal(err)
	}
	target := steward.Node().Host().ID()
	var addrs []ma.Multiaddr
	for _, a := range steward.Node().Host().Addrs() {
		if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			if _, err := a.ValueForProtocol(ma.P_WS); err != nil {
				addrs = append(addrs, a)
			}
		}
	}
	if len(addrs) == 0 {
		t.Fatalf("no TCP address: %v", steward.Node().Host().Addrs())
	}

	const outsiders = 120
	defer keepConnected(t, outsiders, target, addrs, false, func(i int) string { return fmt.Sprintf("127.0.0.%d", 2+i%30) }, 20*time.Millisecond)()
	time.Sleep(3 * time.Second) // the outsiders take the guest slots
	t.Logf("the inviting node holds %d connections", len(steward.Node().Host().Network().Conns()))

	const tries = 12
	var failed []string
	for i := range tries {
		inv, err := steward.CreateInvite(api.InviteRequest{Role: "member", Expires: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		org := startTestDaemon(t, fmt.Sprintf("org%d", i))
		actx, cancel := context.WithTimeout(ctx, 40*time.Second)
		start := time.Now()
		_, err = org.AcceptInvite(actx, api.AcceptRequest{Code: inv.Code, Name: fmt.Sprintf("Colectivo %d", i)})
		cancel()
		if err != nil {
			failed = append(failed, fmt.Sprintf("invitee %d after %v: %v", i, time.Since(start).Round(time.Millisecond), err))
		}
		org.Close()
	}
	if len(failed) > 0 {
		t.Fatalf("while a keyless outsider holds %d bare connections, %d of %d invitees could not redeem a valid code:\n%v",
			outsiders, len(failed), tries, failed)
	}
}

// keylessHost makes a bare TCP host holding no key; below says whether its
// peer ID must sort before target's (the node then waits the admission
// deadline for it to open admission) or after. from, when set, is the
// loopback address it dials from.
func keylessHost(t *testing.T, target peer.ID, below bool, from string) host.Host {
	t.Helper()
	for {
		sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := peer.IDFromPrivateKey(sk)
		if (id < target) != below {
			continue
		}
		var opts []any
		if from != "" {
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
			opts = append(opts, tcp.WithDialerForAddr(func(ma.Multiaddr) (tcp.ContextDialer, error) { return d, nil }))
		}
		h, err := libp2p.New(libp2p.Identity(sk), libp2p.NoListenAddrs, libp2p.Transport(tcp.NewTCPTransport, opts...))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
}

// TestBareConnectionsDoNotKeepMembersOut: an outsider that knows a
// laptop-profile node's address and holds no key opens bare connections
// from many fresh peer IDs and stays silent: each is held until the 5 s
// admission deadline, cut, and opened again at once (a peer that offered
// no proof gets no backoff). While it does, an admitted member's device
// that cannot be dialed (behind NAT, as a phone or a laptop is) cannot
// connect: the node's inbound connection budget (libp2p's resource
// manager, 252 on this machine) is spent on peers that never pass
// admission. Before the outsider comes, the same device connects and is
// admitted. The outsider dials from 127.0.0.2, the member from 127.0.0.1:
// two addresses, as on the internet. (On loopback libp2p's per-IP limits
// do not apply; on the internet they make the outsider use several
// addresses, such as an IPv6 /48 or a few IPv4 ones.)
func TestBareConnectionsDoNotKeepMembersOut(t *testing.T) {
	if raceDetector {
		// In CI's parallel race run the device's identify timed out for
		// want of CPU (3 of 10 tries), with the node holding 6
		// connections: the cap held, the machine did not.
		t.Skip("400 hosts in one process: too heavy beside the parallel race run; make test runs it on its own after it")
	}
	ctx := context.Background()
	steward := startTestDaemon(t, "steward")
	if _, err := steward.CreateNetwork(ctx, api.NetworkRequest{Name: "Red", Threshold: 1}); err != nil {
		t.Fatal(err)
	}
	org := startTestDaemon(t, "org")
	inv, err := steward.CreateInvite(api.InviteRequest{Role: "member", Expires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := org.AcceptInvite(ctx, api.AcceptRequest{Code: inv.Code, Name: "Colectivo"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); !org.isMember(steward.Node().State()); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the steward's node never held the admission")
		}
	}
	sh := steward.Node().Host()
	target := sh.ID()
	var addrs []ma.Multiaddr
	for _, a := range sh.Addrs() {
		if _, err := a.ValueForProtocol(ma.P_TCP); err == nil {
			if _, err := a.ValueForProtocol(ma.P_WS); err != nil {
				addrs = append(addrs, a)
			}
		}
	}
	// The member's device behind NAT: it listens nowhere, proves the
	// member's key.
	dev, err := libp2p.New(libp2p.NoListenAddrs, libp2p.Transport(tcp.NewTCPTransport))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	node.ProveAdmission(dev, steward.Node().State().Network(), org.me())
	// admittedIn says whether dev connects and keeps its connection past
	// the admission deadline (a refused peer is cut by then).
	admittedIn := func() (bool, string) {
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		dev.Network().(*swarm.Swarm).Backoff().Clear(target) // each try dials afresh
		if err := dev.Connect(dctx, peer.AddrInfo{ID: target, Addrs: addrs}); err != nil {
			return false, err.Error()
		}
		time.Sleep(6 * time.Second)
		return sh.Network().Connectedness(dev.ID()) == network.Connected, "cut after connecting"
	}
	if ok, why := admittedIn(); !ok {
		t.Fatalf("before the outsider, the member's device is not admitted: %s", why)
	}
	dev.Network().ClosePeer(target)

	const outsiders = 400
	defer keepConnected(t, outsiders, target, addrs, true, func(int) string { return "127.0.0.2" }, 5*time.Millisecond)()
	time.Sleep(6 * time.Second)
	from2 := 0
	for _, c := range sh.Network().Conns() {
		if ip, _ := c.RemoteMultiaddr().ValueForProtocol(ma.P_IP4); ip == "127.0.0.2" {
			from2++
		}
	}
	t.Logf("the steward's node holds %d connections, %d of them from the outsider's address", len(sh.Network().Conns()), from2)

	// A device that fails to connect tries again, as the node's dialer
	// does: kept out means three attempts in a row failed. (On two
	// loaded cores an attempt now and then fails for want of CPU, with
	// "identify failed to complete"; before the fix six attempts in ten
	// failed.)
	var whys []string
	const tries = 10
	for range tries {
		var failed []string
		for range 3 {
			ok, why := admittedIn()
			dev.Network().ClosePeer(target)
			if ok {
				failed = nil
				break
			}
			failed = append(failed, why)
		}
		if failed != nil {
			whys = append(whys, strings.Join(failed, "; "))
		}
		time.Sleep(time.Second)
	}
	if len(whys) > 0 {
		t.Fatalf("while %d keyless peers hold bare connections, the member's device was kept out %d times of %d: %v", outsiders, len(whys), tries, whys)
	}
}

// keepConnected starts n keyless hosts (keylessHost with below, each from
// the address ip(i)) that dial target again whenever they are not
// connected, every pause, until the returned stop is called.
func keepConnected(t *testing.T, n int, target peer.ID, addrs []ma.Multiaddr, below bool, ip func(int) string, pause time.Duration) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range n {
		h := keylessHost(t, target, below, ip(i))
		h.Peerstore().AddAddrs(target, addrs, peerstore.PermanentAddrTTL)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if h.Network().Connectedness(target) != network.Connected {
					dctx, dcancel := context.WithTimeout(ctx, 2*time.Second)
					h.Network().DialPeer(dctx, target)
					dcancel()
				}
				time.Sleep(pause)
			}
		}()
	}
	return func() { cancel(); wg.Wait() }
}
