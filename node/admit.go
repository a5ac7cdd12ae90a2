package node

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	circuitproto "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/proto"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	ma "github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	msmux "github.com/multiformats/go-multistream"

	"github.com/ceiba-network/ceiba/directory"
)

// AdmitProtocol is admission at the connection: right after a connection
// to a peer comes up, the two nodes prove to each other that each holds an
// admitted, unrevoked key of the network (a steward's, a member's or a
// reader's). Until a peer is admitted, no other protocol is served to it
// or opened to it (streamGate): no identify, DHT, GossipSub, sync or relay
// reservation. Of the two peers, the one whose peer ID sorts first (O, the
// opener) opens one stream; the other is A:
//
//	O → A  nO                          16 random bytes
//	A → O  nA, macA                    16 random bytes, 32-byte HMAC
//	O → A  macO, keyO, sigO            32 + 32 + 64 bytes
//	A → O  keyA, sigA                  32 + 64 bytes, only if O is admitted
//
// mac is HMAC-SHA256 under the network's sync proof key over a label, the
// side, both peer IDs and both nonces (admitMAC): it shows knowledge of the
// network without naming a key, so neither side shows its directory key
// to a peer that does not know the network, and A shows its key only to an
// admitted O. sig is the side's directory key signing the admission transcript
// (domain directory.AdmitDomain): the network, both peer IDs in the order
// (O, A), the key, both nonces and the side. The secure channel
// authenticates the peer IDs, and both nonces are fresh, so a proof is
// worth nothing on another connection, from another peer ID, or later.
const AdmitProtocol protocol.ID = "/ceiba/admit/2.0.0"

// GuestProtocolPrefix names the protocols a peer that is not admitted may
// still use: the invite protocol, which its code authenticates. Relay
// circuits (hop) are open to it too, but it can reach only peers holding
// a reservation, which only admitted peers get (relayACL).
const GuestProtocolPrefix = "/ceiba/invite/"

const (
	admitNonceLen = 16
	macLen        = sha256.Size
	proofLen      = 32 + 64 // key, signature
	// admitTimeout bounds the whole exchange, and so how long a stream
	// the peer opened (or one our libp2p opens to it) waits for the
	// peer's admission before it is refused.
	admitTimeout = 5 * time.Second
	// guestWindow is how long a peer that offered no proof at all but
	// opened a guest protocol's stream (an invitee's temporary host)
	// keeps its connection once its admission has failed; a peer that
	// offered a bad proof is cut at once. A guest slot is taken only by
	// opening such a stream: counting every proof-less connection let an
	// outsider holding bare connections fill the slots and lock invitees
	// out (found in review, session 40). A proof-less peer that opens
	// none is cut admitTimeout after its admission began.
	guestWindow = 10 * time.Second
	maxGuests   = 64
	// guestOpenGrace is how long a proof-less peer keeps its connection,
	// at least, once its admission failed, to open a guest protocol's
	// stream (admitFinish).
	guestOpenGrace = 3 * time.Second
	// maxGuestsPerGroup bounds the guests from one IPv4 address or one
	// IPv6 /48 (guestGroup), so that the slots take many addresses to
	// fill; a few invitees joining at once from one office still fit.
	maxGuestsPerGroup = 4
	// maxUnadmittedPerGroup and maxUnadmitted bound the inbound
	// connections whose peer has not passed admission yet, from one
	// address group (guestGroup) and in all. A silent keyless peer holds
	// its connection until admitTimeout and comes back at once under a
	// fresh peer ID: unbounded, such peers used up the inbound
	// connection budget (libp2p's resource manager, a few hundred) and a
	// member's device that can only dial in was refused (found in
	// review, session 40). libp2p's own per-IP limits spare loopback and
	// allow 64 connections from one IPv6 /48; these apply to every
	// address. An admitted peer's connection leaves the count within
	// milliseconds, so honest bursts fit.
	maxUnadmittedPerGroup = 16
	maxUnadmitted         = 128
	// admitBackoff is how long a peer refused for its proof is not
	// dialed and its connections are refused before any stream. A
	// revoked key's peers stay refused for as long as they are
	// remembered (maxRefused, least recent first).
	admitBackoff   = 30 * time.Second
	unknownBackoff = time.Second
	maxRefused     = 4096
	// revokeCheck is how often admitted peers' keys are checked against
	// the state: a revoked key's connections close within it.
	revokeCheck = time.Second
)

var errNotAdmitted = errors.New("node: peer not admitted to this network")

// admitState is one peer's admission, for as long as it has a connection.
type admitState struct {
	done   chan struct{} // closed when the outcome is known
	ok     bool
	key    directory.PublicKey
	role   string
	reason string // why not, when !ok

	// Under admission.mu:
	started    time.Time
	guest      bool   // holds a guest slot (it opened a guest protocol's stream)
	guestGroup string // the slot's guestGroup
	guestTimer bool   // its guestWindow has started
}

type pendingConn struct {
	group string
	since time.Time
}

type refusal struct {
	until time.Time
	key   directory.PublicKey // zero when the peer named no valid key
}

// admission is the node's admission book: peers connected now, and peers
// refused recently (bounded).
type admission struct {
	on     atomic.Bool // running: the node built its host (Config.Host)
	macKey []byte
	ready  chan struct{} // closed once the host is up and the handler set

	mu      sync.Mutex
	peers   map[peer.ID]*admitState
	refused *simplelru.LRU[peer.ID, refusal]
	guests  int
	groups  map[string]int // guests by guestGroup
	// Inbound connections not admitted yet, with their group and when
	// they came (countUnadmitted).
	unadmitted map[network.Conn]pendingConn
	byGroup    map[string]int
	logs       *budgets // shouldLog only: one line per peer and reason
}

func newAdmission(net directory.NetworkID) *admission {
	l, err := simplelru.NewLRU[peer.ID, refusal](maxRefused, nil)
	if err != nil {
		panic(err) // only for a size below 1
	}
	return &admission{
		macKey:  syncProofKey(net),
		ready:   make(chan struct{}),
		peers:   map[peer.ID]*admitState{},
		refused: l,
		groups:  map[string]int{},

		unadmitted: map[network.Conn]pendingConn{},
		byGroup:    map[string]int{},
		logs:       newBudgets(),
	}
}

func syncProofKey(net directory.NetworkID) []byte { return directory.SyncProofKey(net) }

func admitMAC(key []byte, side byte, opener, accepter peer.ID, nO, nA []byte) []byte {
	return directory.AdmitMAC(key, side, []byte(opener), []byte(accepter), nO, nA)
}

// admitter is one side of the admission exchange: a host, the identity
// it proves and how it judges the other side's key. The node is one; tests
// give a bare libp2p host an identity with it.
type admitter struct {
	self   peer.ID
	id     *directory.Identity
	net    directory.NetworkID
	macKey []byte
	judge  func(peer.ID, directory.PublicKey) (role string, err error)
}

// ProveAdmission makes a libp2p host built elsewhere answer and open
// admission as id in network net, judging every peer's key acceptable: it
// is what a peer holding a key (an insider, a stolen device) runs on a host
// of its own, and how tests of what such a peer can do get past admission.
// Ceiba's nodes never call it. Call it before h connects to anything.
func ProveAdmission(h host.Host, net directory.NetworkID, id *directory.Identity) {
	a := admitter{self: h.ID(), id: id, net: net, macKey: syncProofKey(net),
		judge: func(peer.ID, directory.PublicKey) (string, error) { return "anyone", nil }}
	h.SetStreamHandler(AdmitProtocol, func(s network.Stream) { defer s.Reset(); a.accept(s) })
	h.Network().Notify(&network.NotifyBundle{ConnectedF: func(_ network.Network, c network.Conn) {
		if h.ID() < c.RemotePeer() {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), admitTimeout)
				defer cancel()
				a.open(ctx, c)
			}()
		}
	}})
}

func (n *Node) admitter() admitter {
	return admitter{self: n.host.ID(), id: n.id, net: n.cfg.Network, macKey: n.adm.macKey, judge: n.judgeKey}
}

// judgeKey says whether a key that signed its proof on p's connection is
// admitted here.
func (n *Node) judgeKey(p peer.ID, k directory.PublicKey) (string, error) {
	if n.state.Charter() == nil && !n.state.IsRevoked(k) {
		// A node that holds no charter yet (a new network's nodes before
		// the genesis record, a fresh store) has no member list to judge
		// by and nothing to protect; its peers judge it by theirs. The
		// key stays bound to the peer, so a later revocation cuts it.
		return "unjudged", nil
	}
	role, ok := n.admittedRole(k)
	if !ok && role == "unknown" && slices.ContainsFunc(n.bootstrap, func(ai peer.AddrInfo) bool { return ai.ID == p }) {
		// The operator named this peer (an invite code names the
		// inviter's node): a node fresh from an invite holds only the
		// genesis charter and its own admission, not the memberships it
		// will sync from this very peer. Revoked keys stay out.
		return "bootstrap peer", nil
	}
	if !ok {
		return role, errors.New("the key is not an admitted, unrevoked steward, member or reader here (" + role + ")")
	}
	return role, nil
}

func (a admitter) proof(side byte, opener, accepter peer.ID, nO, nA []byte) []byte {
	return directory.AdmitProof(a.id, a.net, side, []byte(opener), []byte(accepter), nO, nA)
}

// check verifies the other side's proof and judges its key.
func (a admitter) check(proof []byte, side byte, opener, accepter peer.ID, nO, nA []byte) admitState {
	k, ok := directory.CheckAdmitProof(a.net, proof, side, []byte(opener), []byte(accepter), nO, nA)
	if !ok {
		return admitState{key: k, reason: errForgedProof.Error()}
	}
	other := accepter
	if side == 'O' {
		other = opener
	}
	role, err := a.judge(other, k)
	if err != nil {
		return admitState{key: k, role: role, reason: err.Error()}
	}
	return admitState{ok: true, key: k, role: role}
}

var errForgedProof = errors.New("the signature does not verify (forged, or replayed from another connection)")

// open runs the opener's side on c. noProof says the peer offered none
// (it does not speak admission, or went silent), as opposed to a wrong one.
func (a admitter) open(ctx context.Context, c network.Conn) (res admitState, noProof bool) {
	p := c.RemotePeer()
	s, err := c.NewStream(network.WithAllowLimitedConn(ctx, "admission is a few hundred bytes"))
	if err != nil {
		return admitState{reason: "no stream: " + err.Error()}, true
	}
	defer s.Reset() // no-op after Close
	if dl, ok := ctx.Deadline(); ok {
		s.SetDeadline(dl)
	}
	if err := s.SetProtocol(AdmitProtocol); err != nil {
		return admitState{reason: err.Error()}, true
	}
	if err := msmux.SelectProtoOrFail(AdmitProtocol, s); err != nil {
		// A peer that does not speak admission at all: an invitee's
		// temporary host, or a stranger.
		return admitState{reason: "it does not speak " + string(AdmitProtocol)}, true
	}
	nO := make([]byte, admitNonceLen)
	rand.Read(nO)
	if _, err := s.Write(nO); err != nil {
		return admitState{reason: "stream failed"}, true
	}
	buf := make([]byte, admitNonceLen+macLen)
	if _, err := io.ReadFull(s, buf); err != nil {
		return admitState{reason: "it sent no network proof"}, true
	}
	nA, macA := buf[:admitNonceLen], buf[admitNonceLen:]
	if !hmac.Equal(macA, admitMAC(a.macKey, 'A', a.self, p, nO, nA)) {
		return admitState{reason: "its network proof is wrong (another network, or none)"}, false
	}
	msg := append(admitMAC(a.macKey, 'O', a.self, p, nO, nA), a.proof('O', a.self, p, nO, nA)...)
	if _, err := s.Write(msg); err != nil {
		return admitState{reason: "stream failed"}, true
	}
	proof := make([]byte, proofLen)
	if _, err := io.ReadFull(s, proof); err != nil {
		// Its judgement of this node, not a fault of its own (it may
		// not know this node's key yet): no backoff.
		return admitState{reason: "it refused this node's proof, or sent none"}, true
	}
	res = a.check(proof, 'A', a.self, p, nO, nA)
	if res.ok {
		s.Close()
	}
	return res, false
}

// accept runs the accepter's side on s; decided is false when the peer
// went silent before its proof (the caller's deadline decides then).
func (a admitter) accept(s network.Stream) (res admitState, noProof, decided bool) {
	p := s.Conn().RemotePeer()
	s.SetDeadline(time.Now().Add(admitTimeout))
	nO := make([]byte, admitNonceLen)
	if _, err := io.ReadFull(s, nO); err != nil {
		return admitState{}, true, false
	}
	nA := make([]byte, admitNonceLen)
	rand.Read(nA)
	if _, err := s.Write(append(nA, admitMAC(a.macKey, 'A', p, a.self, nO, nA)...)); err != nil {
		return admitState{}, true, false
	}
	buf := make([]byte, macLen+proofLen)
	if _, err := io.ReadFull(s, buf); err != nil {
		return admitState{reason: "it sent no proof after this node's network proof"}, true, true
	}
	if !hmac.Equal(buf[:macLen], admitMAC(a.macKey, 'O', p, a.self, nO, nA)) {
		return admitState{reason: "its network proof is wrong (another network, or none)"}, false, true
	}
	res = a.check(buf[macLen:], 'O', p, a.self, nO, nA)
	if !res.ok {
		return res, false, true
	}
	if _, err := s.Write(a.proof('A', p, a.self, nO, nA)); err != nil {
		return admitState{reason: "stream failed"}, true, true
	}
	// Wait for the opener to close its side (it has read the proof):
	// resetting the stream now could drop the proof in flight.
	s.CloseWrite()
	io.Copy(io.Discard, io.LimitReader(s, 1))
	return res, false, true
}

// admitStart registers p and starts its admission if it has none yet.
func (n *Node) admitStart(p peer.ID) *admitState {
	a := n.adm
	a.mu.Lock()
	st := a.peers[p]
	fresh := st == nil
	if fresh {
		st = &admitState{done: make(chan struct{}), started: time.Now()}
		a.peers[p] = st
	}
	a.mu.Unlock()
	if fresh {
		go n.admitRun(p, st)
	}
	return st
}

// admitRun drives p's admission: the opener runs the exchange; the
// accepter waits for admitServe to finish it, and gives up after
// admitTimeout.
func (n *Node) admitRun(p peer.ID, st *admitState) {
	select {
	case <-n.adm.ready:
	case <-n.ctx.Done():
		n.admitFinish(p, st, admitState{reason: "the node is closing"}, false)
		return
	}
	ctx, cancel := context.WithTimeout(n.ctx, admitTimeout)
	defer cancel()
	if n.host.ID() < p {
		conns := n.host.Network().ConnsToPeer(p)
		if len(conns) == 0 {
			n.admitFinish(p, st, admitState{reason: "it has no connection"}, true)
			return
		}
		res, noProof := n.admitter().open(ctx, conns[0])
		n.admitFinish(p, st, res, noProof)
		return
	}
	select {
	case <-st.done:
	case <-ctx.Done():
		n.admitFinish(p, st, admitState{reason: "it offered no admission proof in time"}, true)
	}
}

// admitServe runs the accepter's side of an admission stream.
func (n *Node) admitServe(s network.Stream) {
	defer s.Reset() // no-op after a clean close
	p := s.Conn().RemotePeer()
	if !(p < n.host.ID()) {
		return // the opener is the peer ID that sorts first; this one is not
	}
	st := n.admitStart(p)
	select {
	case <-st.done:
		return // decided already (on another connection's stream)
	default:
	}
	if res, noProof, decided := n.admitter().accept(s); decided {
		n.admitFinish(p, st, res, noProof)
	}
}

// admitFinish records p's outcome once, wakes the streams waiting on it
// and, for a refusal, cuts p: at once after a bad proof (and refuses it
// for admitBackoff), after guestWindow when it offered none and this node
// serves a guest protocol.
func (n *Node) admitFinish(p peer.ID, st *admitState, res admitState, noProof bool) {
	a := n.adm
	closing := n.ctx.Err() != nil
	// The relays this node uses need not be members: kept, not guests.
	relay := !res.ok && noProof && !closing && n.isOurRelay(p)
	a.mu.Lock()
	select {
	case <-st.done:
		a.mu.Unlock()
		return
	default:
	}
	st.ok, st.key, st.role, st.reason = res.ok, res.key, res.role, res.reason
	close(st.done)
	if a.peers[p] != st || closing {
		// Its connections closed while it ran (a newer connection has
		// its own admission, which this outcome must not cut), or the
		// node is closing.
		a.mu.Unlock()
		return
	}
	// A peer without a proof may be an invitee: kept while it uses a
	// guest protocol (guestStarts), or until admitTimeout after its
	// admission began for it to open one.
	guest := !res.ok && noProof && !relay && n.servesGuests()
	startWindow := guest && st.guest && !st.guestTimer
	if startWindow {
		st.guestTimer = true
	}
	// At least guestOpenGrace after the failure: this node holds a
	// stranger's identify until its admission ends, and a libp2p that
	// waits for identify before a stream (an invitee's host, one asking
	// this node's relay for a circuit to its inviter) opens its invite or
	// hop stream only then.
	grace := max(time.Until(st.started.Add(admitTimeout)), guestOpenGrace)
	if !res.ok && !noProof {
		// A key this node does not know yet may be one whose admission
		// is still on its way by gossip: a short pause, not a ban.
		wait := unknownBackoff
		if res.key == (directory.PublicKey{}) || res.reason == errForgedProof.Error() || n.state.IsRevoked(res.key) {
			wait = admitBackoff
		}
		a.refused.Add(p, refusal{until: time.Now().Add(wait), key: res.key})
	}
	a.mu.Unlock()
	if relay {
		n.log.Debug("relay kept without admission", "peer", p)
		return
	}
	if res.ok {
		conns := n.host.Network().ConnsToPeer(p)
		a.mu.Lock()
		for _, c := range conns {
			a.forgetConn(c)
		}
		a.mu.Unlock()
		n.log.Debug("peer admitted", "peer", p, "role", res.role, "key", directory.Fingerprint(res.key))
		n.sync.afterAdmission(p)
		return
	}
	if a.logs.shouldLog("admit-" + string(p)) {
		args := []any{"peer", p, "why", res.reason}
		if res.key != (directory.PublicKey{}) {
			args = append(args, "key", directory.Fingerprint(res.key))
		}
		n.log.Warn("connection refused: the peer is not admitted", args...)
	}
	switch {
	case !guest:
		n.host.Network().ClosePeer(p)
	case startWindow:
		n.guestWindowStart(p, st)
	default:
		time.AfterFunc(grace, func() { n.cutIfNoGuest(p, st) })
	}
}

// cutIfNoGuest closes p's connections unless, on admission st, p opened
// a guest protocol's stream (its guestWindow decides then) or was
// admitted.
func (n *Node) cutIfNoGuest(p peer.ID, st *admitState) {
	a := n.adm
	a.mu.Lock()
	cut := a.peers[p] == st && !st.guest && !st.ok
	a.mu.Unlock()
	if cut {
		n.host.Network().ClosePeer(p)
	}
}

// guestWindowStart gives guest p guestWindow to finish, then frees its
// slot and cuts it unless it was admitted on a newer connection.
func (n *Node) guestWindowStart(p peer.ID, st *admitState) {
	time.AfterFunc(guestWindow, func() {
		a := n.adm
		a.mu.Lock()
		a.releaseGuest(st)
		current := a.peers[p] == st
		a.mu.Unlock()
		if current && n.admitted(p) == nil {
			n.host.Network().ClosePeer(p)
		}
	})
}

// releaseGuest frees st's guest slot, once. Call with a.mu held.
func (a *admission) releaseGuest(st *admitState) {
	if !st.guest {
		return
	}
	st.guest = false
	a.guests--
	if a.groups[st.guestGroup]--; a.groups[st.guestGroup] <= 0 {
		delete(a.groups, st.guestGroup)
	}
}

var errGuestsFull = errors.New("node: too many peers without admission use the invite protocol now")

// guestStarts is called when a peer not admitted opens a stream of a
// guest protocol: it takes a guest slot for p (one per admission), within
// maxGuests and maxGuestsPerGroup, or refuses the stream.
func (n *Node) guestStarts(p peer.ID) error {
	st := n.admitStart(p)
	group := n.guestGroup(p)
	a := n.adm
	a.mu.Lock()
	if a.peers[p] != st || st.guest || st.guestTimer {
		// Gone already, or its slot is taken (a second stream) or was
		// used up: one slot and one window per admission.
		refuse := a.peers[p] != st || !st.guest
		a.mu.Unlock()
		if refuse {
			return errGuestsFull
		}
		return nil
	}
	if a.guests >= maxGuests || a.groups[group] >= maxGuestsPerGroup {
		a.mu.Unlock()
		if a.logs.shouldLog("guests-full") {
			n.log.Warn("invite stream refused: too many peers without admission use the invite protocol now", "peer", p, "guests", maxGuests, "from", group)
		}
		return errGuestsFull
	}
	st.guest, st.guestGroup = true, group
	a.guests++
	a.groups[group]++
	decided := false
	select {
	case <-st.done:
		decided = !st.ok
		st.guestTimer = decided
	default:
	}
	a.mu.Unlock()
	if decided {
		// Its admission has failed already: the window starts now.
		n.guestWindowStart(p, st)
	}
	return nil
}

// guestGroup names the address a guest's slot counts against: its IPv4
// address or its IPv6 /48 (the relay's, over a relay circuit). Loopback
// addresses count one by one like any other.
func (n *Node) guestGroup(p peer.ID) string {
	for _, c := range n.host.Network().ConnsToPeer(p) {
		// ToIP reads the first component: a circuit's is its relay's.
		if ip, err := manet.ToIP(c.RemoteMultiaddr()); err == nil {
			return addrGroup(ip)
		}
	}
	return "no IP address"
}

func addrGroup(ip net.IP) string {
	if ip4 := ip.To4(); ip4 != nil {
		return ip4.String()
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(48, 128)), Mask: net.CIDRMask(48, 128)}).String()
}

// countUnadmitted counts an inbound connection from a peer not admitted
// yet against maxUnadmittedPerGroup and maxUnadmitted, and reports
// whether it stays. Over the group's cap it is closed at once. Over the
// total, the oldest connection of the group holding the most is closed
// instead, unless that is the newcomer's own group: an outsider's many
// addresses then lose their connections before a member's one does.
// Relayed connections are the relay's to bound, and the relays this node
// uses are kept without admission.
func (n *Node) countUnadmitted(c network.Conn) bool {
	p := c.RemotePeer()
	if c.Stat().Direction != network.DirInbound || c.Stat().Limited || n.admitted(p) != nil || n.isOurRelay(p) {
		return true
	}
	g := "no IP address"
	if ip, err := manet.ToIP(c.RemoteMultiaddr()); err == nil {
		g = addrGroup(ip)
	}
	a := n.adm
	var evict network.Conn
	a.mu.Lock()
	full := a.byGroup[g] >= maxUnadmittedPerGroup
	if !full && len(a.unadmitted) >= maxUnadmitted {
		most := ""
		for grp, k := range a.byGroup {
			if k > a.byGroup[most] {
				most = grp
			}
		}
		if a.byGroup[most] <= a.byGroup[g]+1 {
			full = true
		} else {
			for oc, pc := range a.unadmitted {
				if pc.group == most && (evict == nil || pc.since.Before(a.unadmitted[evict].since)) {
					evict = oc
				}
			}
			a.forgetConn(evict)
		}
	}
	if !full {
		a.unadmitted[c] = pendingConn{group: g, since: time.Now()}
		a.byGroup[g]++
	}
	a.mu.Unlock()
	if evict != nil {
		go evict.Close()
	}
	if full {
		if a.logs.shouldLog("unadmitted-" + g) {
			n.log.Warn("connection refused: too many connections wait for admission", "from", g)
		}
		go c.Close() // not under the swarm's notification
		return false
	}
	return true
}

// denyAccept is the connection gater's refusal of an inbound connection
// before its handshake: its address group holds maxUnadmittedPerGroup
// connections waiting for admission already (countUnadmitted would close
// it after a handshake that costs this node as much as the peer). A relay
// circuit is not refused here: its address is the relay's.
func (n *Node) denyAccept(remote ma.Multiaddr) bool {
	if _, err := remote.ValueForProtocol(ma.P_CIRCUIT); err == nil {
		return false
	}
	ip, err := manet.ToIP(remote)
	if err != nil {
		return false
	}
	g := addrGroup(ip)
	n.adm.mu.Lock()
	defer n.adm.mu.Unlock()
	return n.adm.byGroup[g] >= maxUnadmittedPerGroup
}

// forgetConn takes c out of the unadmitted count. Call with a.mu held.
func (a *admission) forgetConn(c network.Conn) {
	pc, ok := a.unadmitted[c]
	if !ok {
		return
	}
	delete(a.unadmitted, c)
	if a.byGroup[pc.group]--; a.byGroup[pc.group] <= 0 {
		delete(a.byGroup, pc.group)
	}
}

// servesGuests reports whether this node offers a protocol a peer without
// a proof may use (the daemon's invite handler).
func (n *Node) servesGuests() bool {
	for _, id := range n.host.Mux().Protocols() {
		if strings.HasPrefix(string(id), GuestProtocolPrefix) {
			return true
		}
	}
	return false
}

// admitted returns p's admission if p is admitted now, nil otherwise.
func (n *Node) admitted(p peer.ID) *admitState {
	n.adm.mu.Lock()
	defer n.adm.mu.Unlock()
	st := n.adm.peers[p]
	if st == nil {
		return nil
	}
	select {
	case <-st.done:
		if st.ok {
			return st
		}
	default:
	}
	return nil
}

// awaitAdmitted waits (bounded) for p's admission and reports whether p is
// admitted. On a host the node did not build, admission does not run and
// every peer counts as admitted.
func (n *Node) awaitAdmitted(p peer.ID) bool {
	if !n.adm.on.Load() {
		return true
	}
	st := n.admitStart(p)
	t := time.NewTimer(admitTimeout + time.Second)
	defer t.Stop()
	select {
	case <-st.done:
		return st.ok
	case <-t.C:
	case <-n.ctx.Done():
	}
	return false
}

// streamGate holds every stream to or from p until p is admitted, and
// refuses it if p is not. The admission stream itself and the guest
// protocols pass.
func (n *Node) streamGate(p peer.ID, dir network.Direction, proto protocol.ID) error {
	if dir == network.DirInbound && n.adm.on.Load() && (strings.HasPrefix(string(proto), GuestProtocolPrefix) || proto == circuitproto.ProtoIDv2Hop) && n.admitted(p) == nil {
		// An invitee, or one asking this node's relay for a circuit to
		// its inviter behind NAT (relayACL): a guest, within the slots.
		return n.guestStarts(p)
	}
	if n.allowedBefore(p, proto) {
		return nil
	}
	if n.awaitAdmitted(p) {
		return nil
	}
	return errNotAdmitted
}

// holdInbound wraps the host's handler of inbound streams: a stream from
// a peer not admitted yet is not negotiated until the peer is admitted,
// so a stranger cannot even learn which protocols the node speaks (an
// answer to multistream-select says that much). It reads the
// multistream header and the first protocol the peer proposes, lets the
// admission protocol and the guest protocols through at once, holds
// anything else for the admission (bounded), and then hands the stream,
// with the bytes it read put back, to libp2p's own negotiation. A stream
// it refuses is reset without a byte written.
func (n *Node) holdInbound() {
	type handlerGetter interface{ StreamHandler() network.StreamHandler }
	nw := n.host.Network()
	g, ok := nw.(handlerGetter)
	if !ok {
		return // a host of the caller's that cannot be wrapped (tests' mocknet)
	}
	orig := g.StreamHandler()
	if orig == nil {
		return
	}
	nw.SetStreamHandler(func(s network.Stream) {
		p := s.Conn().RemotePeer()
		if n.admitted(p) != nil {
			orig(s)
			return
		}
		s.SetReadDeadline(time.Now().Add(admitTimeout))
		var seen bytes.Buffer
		r := io.TeeReader(s, &seen)
		var proto string
		for range 2 { // the multistream header, then the protocol
			line, err := readMultistreamLine(r)
			if err != nil {
				s.Reset()
				return
			}
			proto = line
		}
		s.SetReadDeadline(time.Time{})
		if !n.allowedBefore(p, protocol.ID(proto)) && !n.awaitAdmitted(p) {
			s.ResetWithError(network.StreamProtocolNegotiationFailed)
			return
		}
		orig(&replayStream{Stream: s, r: io.MultiReader(&seen, s)})
	})
}

// readMultistreamLine reads one multistream-select message: a uvarint
// length, then that many bytes ending in a newline.
func readMultistreamLine(r io.Reader) (string, error) {
	br := byteReader{r}
	l, err := binary.ReadUvarint(br)
	if err != nil {
		return "", err
	}
	if l == 0 || l > 1024 {
		return "", errors.New("multistream line of a bad length")
	}
	b := make([]byte, l)
	if _, err := io.ReadFull(r, b); err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(b), "\n"), nil
}

type byteReader struct{ io.Reader }

func (b byteReader) ReadByte() (byte, error) {
	var one [1]byte
	_, err := io.ReadFull(b.Reader, one[:])
	return one[0], err
}

// replayStream is a stream whose first bytes were read already and are
// read again.
type replayStream struct {
	network.Stream
	r io.Reader
}

func (s *replayStream) Read(b []byte) (int, error) { return s.r.Read(b) }

// preAdmission reports whether proto is served before admission: the
// admission protocol itself, the guest protocols, relay hop (its ACL
// judges) and relay stop (a relay announcing a circuit, which is a
// connection of its own that must pass admission).
func preAdmission(proto protocol.ID) bool {
	return proto == AdmitProtocol || proto == circuitproto.ProtoIDv2Hop || proto == circuitproto.ProtoIDv2Stop ||
		strings.HasPrefix(string(proto), GuestProtocolPrefix)
}

// allowedBefore reports whether p may use proto before (or without)
// admission: preAdmission, and identify with the relays this node is
// configured or chartered to use, which need not be members (their
// operators see this node's address anyway; AutoRelay needs identify to
// see they relay).
func (n *Node) allowedBefore(p peer.ID, proto protocol.ID) bool {
	if preAdmission(proto) {
		return true
	}
	return (proto == identify.ID || proto == identify.IDPush) && n.isOurRelay(p)
}

// isOurRelay reports whether p is one of the relays this node uses.
func (n *Node) isOurRelay(p peer.ID) bool {
	for _, s := range append(slices.Clone(n.cfg.Transport.Relays), n.charterRelays()...) {
		if ai, err := parseP2PAddr(s); err == nil && ai.ID == p {
			return true
		}
	}
	return false
}

// denyPeer is the connection gater's early refusal: peers refused for
// their proof within admitBackoff, and peers whose key is revoked.
func (n *Node) denyPeer(p peer.ID) bool {
	a := n.adm
	a.mu.Lock()
	r, ok := a.refused.Peek(p)
	a.mu.Unlock()
	if !ok {
		return false
	}
	return time.Now().Before(r.until) || (r.key != directory.PublicKey{} && n.state.IsRevoked(r.key))
}

// relayACL lets only admitted peers reserve a slot on this node's relay.
// Circuits it leaves to the reservations: a circuit can only end at a peer
// holding one, so at an admitted peer, whose own admission then judges the
// circuit. A peer that is not admitted must be able to open one, since an
// invitee (a keyless host) reaches an inviter behind NAT through its relay.
//
// So AllowConnect refuses nothing. Judging the destination for an
// unadmitted requester would tell any outsider, for any peer ID it names,
// whether that peer is admitted here (PERMISSION_DENIED against
// NO_RESERVATION, answered before the reservation is looked up); judging
// the requester alone would shut out invitees.
type relayACL struct{ n *Node }

func (r relayACL) AllowReserve(p peer.ID, _ ma.Multiaddr) bool { return r.n.awaitAdmitted(p) }

func (r relayACL) AllowConnect(peer.ID, ma.Multiaddr, peer.ID) bool { return true }

// startAdmission serves the admission protocol, starts it on every
// connection, forgets peers whose last connection closed, and closes
// the connections of peers whose key the state no longer admits.
func (n *Node) startAdmission() {
	n.host.SetStreamHandler(AdmitProtocol, n.admitServe)
	n.holdInbound()
	n.host.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			if n.countUnadmitted(c) {
				n.admitStart(c.RemotePeer())
			}
		},
		DisconnectedF: func(nw network.Network, c network.Conn) {
			p := c.RemotePeer()
			n.adm.mu.Lock()
			n.adm.forgetConn(c)
			n.adm.mu.Unlock()
			if len(nw.ConnsToPeer(p)) > 0 {
				return
			}
			// Forgotten even while its admission runs: that one
			// finishes on its own, and a new connection starts afresh.
			n.adm.mu.Lock()
			if st := n.adm.peers[p]; st != nil {
				n.adm.releaseGuest(st)
				delete(n.adm.peers, p)
			}
			n.adm.mu.Unlock()
		},
	})
	close(n.adm.ready)
	for _, p := range n.host.Network().Peers() {
		n.admitStart(p)
	}
	n.wg.Go(n.revokeLoop)
}

// afterAdmission starts a sync with p now that it is admitted: a session
// tried while the admission ran failed, and its backoff no longer applies.
func (s *syncer) afterAdmission(p peer.ID) {
	s.mu.Lock()
	if ps := s.peers[p]; ps != nil && !ps.running {
		ps.notBefore, ps.failures = time.Time{}, 0
	}
	s.mu.Unlock()
	s.request(p)
}

// revokeLoop closes, every revokeCheck, the connections of admitted peers
// whose key the state now holds revoked, and keeps them out.
func (n *Node) revokeLoop() {
	t := time.NewTicker(revokeCheck)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		type cut struct {
			p    peer.ID
			k    directory.PublicKey
			role string
		}
		var cuts []cut
		n.adm.mu.Lock()
		for p, st := range n.adm.peers {
			select {
			case <-st.done:
			default:
				continue
			}
			if !st.ok {
				continue
			}
			if n.state.IsRevoked(st.key) {
				role := "revoked"
				// Forgotten, not changed (waiters read st without the
				// lock): a stream on the way in starts a fresh
				// admission, which the revoked key fails.
				delete(n.adm.peers, p)
				n.adm.refused.Add(p, refusal{until: time.Now().Add(admitBackoff), key: st.key})
				cuts = append(cuts, cut{p, st.key, role})
			}
		}
		n.adm.mu.Unlock()
		for _, c := range cuts {
			n.log.Warn("connection closed: the peer's key is no longer admitted", "peer", c.p, "key", directory.Fingerprint(c.k), "is", c.role)
			n.host.Network().ClosePeer(c.p)
		}
	}
}
