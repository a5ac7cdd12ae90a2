package node

import (
	"context"
	"crypto/rand"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	kadpb "github.com/libp2p/go-libp2p-kad-dht/pb"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	libp2pquic "github.com/libp2p/go-libp2p/p2p/transport/quic"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	libp2pwebrtc "github.com/libp2p/go-libp2p/p2p/transport/webrtc"
	ma "github.com/multiformats/go-multiaddr"
	msmux "github.com/multiformats/go-multistream"
	"google.golang.org/protobuf/encoding/protodelim"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	"github.com/ceiba-network/ceiba/internal/lockedbuf"
	"github.com/ceiba-network/ceiba/node/dhtstore"
)

// admitAs makes a bare libp2p host pass admission with id, whatever it
// then does: what an insider (a member gone hostile, a stolen device)
// runs. It must be called before h connects to anything.
func admitAs(h host.Host, net directory.NetworkID, id *directory.Identity) {
	ProveAdmission(h, net, id)
}

// logCount counts the lines of l that contain every one of subs.
func logCount(l *lockedbuf.Buffer, subs ...string) int {
	n := 0
	for line := range strings.SplitSeq(l.String(), "\n") {
		all := line != ""
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

func capturedLog(cfg *Config) *lockedbuf.Buffer {
	l := &lockedbuf.Buffer{}
	cfg.Logger = slog.New(slog.NewTextHandler(l, &slog.HandlerOptions{Level: slog.LevelInfo}))
	return l
}

// outsiderHost is a plain libp2p host on real TCP, QUIC and WebRTC
// (loopback): no key, no network ID, no admission.
func outsiderHost(t *testing.T) host.Host {
	t.Helper()
	return bareHost(t, libp2p.Transport(tcp.NewTCPTransport), libp2p.Transport(libp2pquic.NewTransport),
		libp2p.Transport(libp2pwebrtc.New),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"))
}

// gossipSeen counts what a GossipSub router received: subscriptions (topic
// names) and messages.
type gossipSeen struct{ subs, msgs atomic.Int64 }

func (g *gossipSeen) RecvRPC(rpc *pubsub.RPC) {
	g.subs.Add(int64(len(rpc.GetSubscriptions())))
	g.msgs.Add(int64(len(rpc.GetPublish())))
}
func (*gossipSeen) AddPeer(peer.ID, protocol.ID)                         {}
func (*gossipSeen) RemovePeer(peer.ID)                                   {}
func (*gossipSeen) Join(string)                                          {}
func (*gossipSeen) Leave(string)                                         {}
func (*gossipSeen) Graft(peer.ID, string)                                {}
func (*gossipSeen) Prune(peer.ID, string)                                {}
func (*gossipSeen) ValidateMessage(*pubsub.Message)                      {}
func (*gossipSeen) DeliverMessage(*pubsub.Message)                       {}
func (*gossipSeen) RejectMessage(*pubsub.Message, string)                {}
func (*gossipSeen) DuplicateMessage(*pubsub.Message)                     {}
func (*gossipSeen) ThrottlePeer(peer.ID)                                 {}
func (*gossipSeen) SendRPC(*pubsub.RPC, peer.ID)                         {}
func (*gossipSeen) DropRPC(*pubsub.RPC, peer.ID)                         {}
func (*gossipSeen) UndeliverableMessage(*pubsub.Message)                 {}
func (*gossipSeen) SendRPCCompleted(*pubsub.RPC, peer.ID, time.Duration) {}
func (*gossipSeen) OnNewOutboundStream(peer.ID, protocol.ID)             {}
func (*gossipSeen) OnClosedOutboundStream(peer.ID)                       {}

// kadAsk sends one DHT request under the network's protocol and returns
// the answer, or an error if the node refused the stream or said nothing.
func kadAsk(ctx context.Context, h host.Host, p peer.ID, typ kadpb.Message_MessageType, key []byte) (*kadpb.Message, error) {
	s, err := h.NewStream(ctx, p, "/ceiba/kad/1.0.0")
	if err != nil {
		return nil, err
	}
	defer s.Reset()
	s.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := protodelim.MarshalTo(s, &kadpb.Message{Type: typ, Key: key}); err != nil {
		return nil, err
	}
	var resp kadpb.Message
	if err := protodelim.UnmarshalFrom(byteReader{s}, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

// threeNodes is a steward's, an organization's and a reader's node on real
// loopback transports with the DHT on, all admitted, connected, with an
// entry published and the charter in the DHT.
type threeNodes struct {
	nw                      *dirtest.Network
	steward, member, reader *Node
	stewardLog, memberLog   *lockedbuf.Buffer
	org, readerID           *directory.Identity
}

func startThree(t *testing.T) *threeNodes {
	t.Helper()
	nw := dirtest.New(t, 3, 2)
	x := &threeNodes{nw: nw, org: dirtest.MustIdentity(t), readerID: dirtest.MustIdentity(t)}
	cs := dhtConfig(t, nw, nw.Stewards[0])
	// The steward also listens on WebRTC, as a daemon does for browsers
	// without WebTransport: a stranger may come in that way too.
	cs.Listen = append(slices.Clone(loopback), "/ip4/127.0.0.1/udp/0/webrtc-direct")
	cs.Transport.WebRTC = true
	x.stewardLog = capturedLog(&cs)
	x.steward = startNode(t, cs)
	mustPublish(t, x.steward, nw.Genesis, nw.Admit(t, x.org, "Colectivo"), nw.Vouch(t, x.org, x.readerID))
	cm := dhtConfig(t, nw, x.org)
	x.memberLog = capturedLog(&cm)
	cm.Bootstrap = []string{addr(x.steward)}
	x.member = startNode(t, cm)
	cr := dhtConfig(t, nw, x.readerID)
	cr.Bootstrap = []string{addr(x.steward), addr(x.member)}
	x.reader = startNode(t, cr)
	mustPublish(t, x.member, entryRec(t, nw, x.org, "asesoria", 1))
	nodes := []*Node{x.steward, x.member, x.reader}
	waitFor(t, 30*time.Second, "every node admitted by the two others and holding the entry", func() bool {
		for _, a := range nodes {
			for _, b := range nodes {
				if a != b && a.admitted(b.Host().ID()) == nil {
					return false
				}
			}
		}
		return searchable(nodes, "asesoria juridica", "asesoria")
	})
	return x
}

// A keyless peer that knows one node's address, over real TCP, QUIC or
// WebRTC (a browser's way in, which must admit no more than the others),
// tries everything: identify, FIND_NODE and GET_VALUE under the network's
// DHT protocol, GossipSub, sync. It learns no other peer's address, no
// protocol, no topic and no record, and is disconnected; the node's log
// says why once, however often it comes back.
func TestKeylessPeerLearnsNothingAndIsCut(t *testing.T) {
	x := startThree(t)
	target := x.steward.Host().ID()
	for _, proto := range []string{"tcp", "quic-v1", "webrtc-direct"} {
		t.Run(proto, func(t *testing.T) {
			m := outsiderHost(t)
			seen := &gossipSeen{}
			ps, err := pubsub.NewGossipSub(t.Context(), m, append(wireGossipOptions(), pubsub.WithRawTracer(seen))...)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ps.Join("/ceiba/guess"); err != nil {
				t.Fatal(err)
			}
			var dialed ma.Multiaddr
			for _, a := range x.steward.Host().Addrs() {
				if _, err := a.ValueForProtocol(ma.ProtocolWithName(proto).Code); err == nil {
					dialed = a
				}
			}
			if dialed == nil {
				t.Fatalf("the node listens on no %s address: %v", proto, x.steward.Host().Addrs())
			}
			// Each step has time of its own: once the node has cut the
			// outsider, every later probe dials again and is held until
			// the admission deadline (5 s) before it is refused, so on
			// one shared context the last steps ran out of time.
			step := func() context.Context {
				ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
				t.Cleanup(cancel)
				return ctx
			}
			if err := m.Connect(step(), peer.AddrInfo{ID: target, Addrs: []ma.Multiaddr{dialed}}); err != nil {
				t.Fatal(err)
			}
			key := make([]byte, 32)
			rand.Read(key)
			if resp, err := kadAsk(step(), m, target, kadpb.Message_FIND_NODE, key); err == nil {
				t.Fatalf("FIND_NODE answered with %d peers", len(resp.GetCloserPeers()))
			}
			if resp, err := kadAsk(step(), m, target, kadpb.Message_GET_VALUE, []byte("/ceiba/charter/1")); err == nil {
				t.Fatalf("GET_VALUE answered: record %v, %d peers", resp.GetRecord() != nil, len(resp.GetCloserPeers()))
			}
			if s, err := m.NewStream(step(), target, SyncProtocol); err == nil {
				s.SetDeadline(time.Now().Add(5 * time.Second))
				s.Write(frame(msgHello, make([]byte, 32+helloFixedLen)))
				if got, _ := io.ReadAll(s); len(got) != 0 {
					t.Fatalf("sync answered a stranger with %d bytes", len(got))
				}
				s.Reset()
			}
			// The cut comes 5 s after the connection at most (the admission
			// deadline); the wait is longer only for loaded CI machines.
			cut := func() bool {
				return m.Network().Connectedness(target) != network.Connected &&
					x.steward.Host().Network().Connectedness(m.ID()) != network.Connected
			}
			waitFor(t, 30*time.Second, "the outsider to be disconnected", cut)
			if protos, _ := m.Peerstore().GetProtocols(target); len(protos) != 0 {
				t.Errorf("identify told the outsider the node's protocols: %v", protos)
			}
			for _, a := range m.Peerstore().Addrs(target) {
				if !a.Equal(dialed) {
					t.Errorf("the outsider learned another address of the node: %s", a)
				}
			}
			for _, n := range []*Node{x.member, x.reader} {
				if addrs := m.Peerstore().Addrs(n.Host().ID()); len(addrs) != 0 {
					t.Errorf("the outsider learned the addresses of %s: %v", n.Host().ID(), addrs)
				}
			}
			if len(m.Peerstore().Peers()) > 2 {
				t.Errorf("the outsider's peerstore holds %d peers, want itself and the node", len(m.Peerstore().Peers()))
			}
			if s, g := seen.subs.Load(), seen.msgs.Load(); s != 0 || g != 0 {
				t.Errorf("the outsider's GossipSub received %d subscriptions and %d messages", s, g)
			}
			// It comes back: cut again, and the log does not grow. The
			// handshake may finish before the gater's word reaches the
			// outsider, or the dial be refused outright.
			if err := m.Connect(step(), peer.AddrInfo{ID: target, Addrs: []ma.Multiaddr{dialed}}); err == nil {
				waitFor(t, 30*time.Second, "the outsider to be disconnected again", cut)
			}
			if got := logCount(x.stewardLog, "connection refused", m.ID().String()); got != 1 {
				t.Errorf("the node logged the outsider's refusal %d times, want once", got)
			}
		})
	}
}

// A reader's node is admitted everywhere until its key is revoked; within
// 5 s of the revocation every node has closed its connections, new ones
// fail, and its DHT reads fail.
func TestRevokedReaderIsCutByEveryNode(t *testing.T) {
	x := startThree(t)
	r := x.reader
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	waitFor(t, 20*time.Second, "the reader to read the charter from the DHT", func() bool {
		_, err := r.dht.Get(ctx, directory.SlotIDOf(dhtstore.CharterSlot(1)))
		return err == nil
	})
	mustPublish(t, x.steward, x.nw.RevokeBy(t, x.readerID.Public()))
	start := time.Now()
	waitFor(t, 10*time.Second, "both nodes to close their connections to the revoked reader", func() bool {
		for _, n := range []*Node{x.steward, x.member} {
			if len(n.Host().Network().ConnsToPeer(r.Host().ID())) > 0 {
				return false
			}
		}
		return true
	})
	took := time.Since(start)
	if took > 5*time.Second {
		t.Errorf("the revoked reader was cut after %s, want within 5 s", took)
	}
	t.Logf("the revoked reader's node was cut by both nodes %s after the revocation was published", took.Round(time.Millisecond))
	for _, n := range []*Node{x.steward, x.member} {
		err := r.Host().Connect(ctx, peer.AddrInfo{ID: n.Host().ID(), Addrs: n.Host().Addrs()})
		if err == nil {
			// The handshake may finish before the gater's word reaches
			// the dialer; the connection must not last.
			waitFor(t, 10*time.Second, "the revoked reader's new connection to be cut", func() bool {
				return n.Host().Network().Connectedness(r.Host().ID()) != network.Connected
			})
		}
	}
	for _, n := range []*Node{x.steward, x.member} {
		if _, err := kadAsk(ctx, r.Host(), n.Host().ID(), kadpb.Message_GET_VALUE, []byte("/ceiba/charter/1")); err == nil {
			t.Error("the revoked reader still reads the DHT")
		}
	}
	for i, l := range []*lockedbuf.Buffer{x.stewardLog, x.memberLog} {
		if got := logCount(l, "key is no longer admitted", r.Host().ID().String()); got != 1 {
			t.Errorf("node %d logged the revoked reader's cut %d times, want once", i, got)
		}
	}
}

// A peer that knows the network ID replays an admitted node's proof (made
// for that node's own connection) on its connection: refused, told
// nothing, cut, and not let back in for the backoff; logged once.
func TestReplayedAdmissionProofIsRefused(t *testing.T) {
	x := startThree(t)
	target := x.steward.Host().ID()
	var m host.Host
	for m == nil || !(m.ID() < target) {
		m = outsiderHost(t) // the opener's side is the lower peer ID
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	// A bare dial: Connect would wait for identify, which the node
	// holds until admission.
	m.Peerstore().AddAddrs(target, x.steward.Host().Addrs(), time.Minute)
	c, err := m.Network().DialPeer(ctx, target)
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.NewStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	s.SetProtocol(AdmitProtocol)
	if err := msmux.SelectProtoOrFail(AdmitProtocol, s); err != nil {
		t.Fatal(err)
	}
	s.SetDeadline(time.Now().Add(10 * time.Second))
	nO := make([]byte, admitNonceLen)
	rand.Read(nO)
	s.Write(nO)
	buf := make([]byte, admitNonceLen+macLen)
	if _, err := io.ReadFull(s, buf); err != nil {
		t.Fatal(err)
	}
	nA := buf[:admitNonceLen]
	mk := syncProofKey(x.nw.ID)
	// The member's proof for these very nonces, as its node would give it
	// on its own connection to the steward's.
	member := x.member.admitter()
	proof := member.proof('O', x.member.Host().ID(), target, nO, nA)
	s.Write(append(admitMAC(mk, 'O', m.ID(), target, nO, nA), proof...))
	if got, _ := io.ReadAll(s); len(got) != 0 {
		t.Fatalf("the node answered a replayed proof with %d bytes", len(got))
	}
	waitFor(t, 10*time.Second, "the replayer to be disconnected", func() bool {
		return x.steward.Host().Network().Connectedness(m.ID()) != network.Connected
	})
	if x.steward.admitted(m.ID()) != nil {
		t.Fatal("the replayer is admitted")
	}
	if _, err := m.Network().DialPeer(ctx, target); err == nil {
		time.Sleep(500 * time.Millisecond)
		if x.steward.Host().Network().Connectedness(m.ID()) == network.Connected {
			t.Error("the replayer got a connection back within the backoff")
		}
	}
	if got := logCount(x.stewardLog, "connection refused", m.ID().String(), "signature does not verify"); got != 1 {
		t.Errorf("the node logged the replay %d times, want once", got)
	}
}
