package daemon

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/peerstore"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"
	manet "github.com/multiformats/go-multiaddr/net"
	msmux "github.com/multiformats/go-multistream"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node"
	"github.com/ceiba-network/ceiba/node/api"
)

// InviteProtocol is the stream protocol an invitee uses to redeem a code.
// Version 2: the code carries only a token, and the redeemer proves its key
// by signing a transcript before the inviter spends it.
const InviteProtocol = protocol.ID("/ceiba/invite/2.0.0")

// inviteCode is an invite code (directory.InviteCode) with what reaching
// its node takes in libp2p terms.
type inviteCode struct{ directory.InviteCode }

const (
	tokenLen     = directory.InviteTokenSize
	maxCodeAddrs = directory.MaxInviteCodeAddrs
)

var codeDec, _ = cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, MaxArrayElements: 64, MaxNestedLevels: 8, ExtraReturnErrors: cbor.ExtraDecErrorUnknownField}.DecMode()
var codeEnc, _ = cbor.CoreDetEncOptions().EncMode()

// parseCode reads a code as pasted (directory.ParseInviteCode) and checks
// that its peer ID and addresses are libp2p's.
func parseCode(s string) (*inviteCode, error) {
	c, err := directory.ParseInviteCode(s)
	if err != nil {
		return nil, userErrorf("%s", err)
	}
	if _, err := peer.IDFromBytes(c.Peer); err != nil {
		return nil, userErrorf("%s", directory.ErrInviteCodeDamaged)
	}
	for _, a := range c.Addrs {
		if _, err := multiaddr.NewMultiaddrBytes(a); err != nil {
			return nil, userErrorf("%s", directory.ErrInviteCodeDamaged)
		}
	}
	return &inviteCode{*c}, nil
}

// addrInfo is the inviting node as the code names it.
func (c *inviteCode) addrInfo() peer.AddrInfo {
	id, _ := peer.IDFromBytes(c.Peer) // checked by parseCode
	ai := peer.AddrInfo{ID: id}
	for _, b := range c.Addrs {
		if a, err := multiaddr.NewMultiaddrBytes(b); err == nil {
			ai.Addrs = append(ai.Addrs, a)
		}
	}
	return ai
}

// bootstrap is the code's addresses as a node's bootstrap list.
func (c *inviteCode) bootstrap() []string {
	ai := c.addrInfo()
	addrs, _ := peer.AddrInfoToP2pAddrs(&ai)
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, a.String())
	}
	return out
}

// inviteBook remembers the invites this node issued: only hashes of their
// tokens, so a stolen home cannot redeem pending invites.
type inviteBook struct {
	mu      sync.Mutex
	path    string
	Pending map[string]*pendingInvite `cbor:"1,keyasint"`
}

type pendingInvite struct {
	Role    string `cbor:"1,keyasint"`
	Expires int64  `cbor:"2,keyasint"`
	Used    bool   `cbor:"3,keyasint"`
	// For is the one key a steward join code admits (a steward listed in
	// the charter); zero for member and reader invites, which admit
	// whoever redeems them first.
	For directory.PublicKey `cbor:"4,keyasint"`

	// claimed marks a redemption in progress, so two at once cannot both
	// spend one token; it is never saved.
	claimed bool
}

func loadInvites(path string) (*inviteBook, error) {
	b := &inviteBook{path: path, Pending: map[string]*pendingInvite{}}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, err
	}
	if err := codeDec.Unmarshal(data, b); err != nil {
		return nil, fmt.Errorf("invites file %s is corrupt: %w", path, err)
	}
	return b, nil
}

func (b *inviteBook) saveLocked() error {
	now := time.Now().Unix()
	for k, p := range b.Pending {
		if p.Expires < now-7*24*3600 && !p.claimed {
			delete(b.Pending, k) // long expired: nothing left to refuse
		}
	}
	data, err := codeEnc.Marshal(b)
	if err != nil {
		return err
	}
	return directory.WriteFileAtomic(b.path, data, 0o600)
}

func tokenID(tokHash [32]byte) string { return hex.EncodeToString(tokHash[:]) }

// claim holds an invite for one redemption, or says why it cannot be
// redeemed. The caller either spends it, once the admission is durable,
// or releases it: a redemption that fails halfway leaves the code usable.
func (b *inviteBook) claim(tokHash [32]byte, now time.Time) (pendingInvite, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.Pending[tokenID(tokHash)]
	switch {
	case p == nil:
		return pendingInvite{}, errors.New("this invite was not issued by this node")
	case p.Used:
		return pendingInvite{}, errors.New("this invite has already been used")
	case now.Unix() > p.Expires:
		return pendingInvite{}, fmt.Errorf("this invite expired on %s", time.Unix(p.Expires, 0).UTC().Format(time.RFC1123))
	case p.claimed:
		return pendingInvite{}, errors.New("this invite is being redeemed right now")
	}
	p.claimed = true
	return *p, nil
}

// release gives back a claimed invite whose redemption failed.
func (b *inviteBook) release(tokHash [32]byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if p := b.Pending[tokenID(tokHash)]; p != nil {
		p.claimed = false
	}
}

// spend marks a claimed invite used and saves the book. If saving fails
// the invite stays used in memory all the same: refusing a second
// redemption until restart is safer than allowing one.
func (b *inviteBook) spend(tokHash [32]byte) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.Pending[tokenID(tokHash)]
	if p == nil {
		return errors.New("invite vanished while it was redeemed")
	}
	p.Used, p.claimed = true, false
	return b.saveLocked()
}

// CreateInvite issues a single-use, expiring invite. A member organization
// invites readers; a steward invites organizations (which then need the
// other stewards' approval).
func (d *Daemon) CreateInvite(req api.InviteRequest) (api.Invite, error) {
	n, err := d.joined()
	if err != nil {
		return api.Invite{}, err
	}
	st := n.State()
	switch req.Role {
	case "reader":
		if !d.isMember(st) {
			return api.Invite{}, userErrorf("only an admitted member organization can invite readers; this node is %s", d.role(st))
		}
	case "member":
		if !d.isSteward(st) {
			return api.Invite{}, userErrorf("only a steward can invite an organization; this node is %s", d.role(st))
		}
	default:
		return api.Invite{}, userErrorf("--role must be member or reader")
	}
	if req.Expires == 0 {
		req.Expires = 72 * time.Hour
	}
	if req.Expires < time.Minute || req.Expires > 30*24*time.Hour {
		return api.Invite{}, userErrorf("--expires must be between 1m and 720h")
	}
	code, expires, err := d.issueInvite(n, req.Role, req.Expires, directory.PublicKey{})
	if err != nil {
		return api.Invite{}, err
	}
	return api.Invite{Code: code, Role: req.Role, Expires: expires.UTC()}, nil
}

// issueInvite records a fresh token (its hash only, so a stolen home cannot
// redeem pending invites) and returns the code that carries it.
func (d *Daemon) issueInvite(n *node.Node, role string, valid time.Duration, forKey directory.PublicKey) (string, time.Time, error) {
	tok := make([]byte, tokenLen)
	rand.Read(tok)
	expires := time.Now().Add(valid)
	d.invites.mu.Lock()
	d.invites.Pending[tokenID(directory.InviteTokenHash(tok))] = &pendingInvite{Role: role, Expires: expires.Unix(), For: forKey}
	err := d.invites.saveLocked()
	d.invites.mu.Unlock()
	if err != nil {
		return "", time.Time{}, err
	}
	code := &directory.InviteCode{Peer: []byte(n.Host().ID()), Addrs: codeAddrs(n.Host().Addrs()), Token: tok}
	return code.String(), expires, nil
}

// codeAddrs are the addresses an invite carries: enough to reach the
// inviter, and no more, since each one tells whoever reads the code where
// the inviter is. They also become the new node's bootstrap list and stay
// there for months, so WebTransport addresses are left out when there are
// others (their certificate hashes rotate every two weeks or so, and each
// doubles the length of a code people copy by hand), and loopback
// addresses are left out when there are others (useless from another
// machine). WebRTC addresses stay, and one survives the cut to
// maxCodeAddrs: their certificate hash is derived from the node's key and
// does not rotate, and they are what a phone's browser without
// WebTransport dials, so such a phone can join with the code alone.
func codeAddrs(all []multiaddr.Multiaddr) [][]byte {
	// Groups in order of preference; the code carries the first that is
	// not empty.
	var groups [4][]multiaddr.Multiaddr
	for _, a := range all {
		g := 0
		if _, err := a.ValueForProtocol(multiaddr.P_WEBTRANSPORT); err == nil {
			g++
		}
		if manet.IsIPLoopback(a) {
			g += 2
		}
		groups[g] = append(groups[g], a)
	}
	var pick []multiaddr.Multiaddr
	for _, g := range groups {
		if len(g) > 0 {
			pick = g
			break
		}
	}
	if len(pick) > maxCodeAddrs {
		webRTC := func(a multiaddr.Multiaddr) bool {
			_, err := a.ValueForProtocol(multiaddr.P_WEBRTC_DIRECT)
			return err == nil
		}
		if i := slices.IndexFunc(pick, webRTC); i >= maxCodeAddrs {
			pick[maxCodeAddrs-1] = pick[i]
		}
		pick = pick[:maxCodeAddrs]
	}
	out := make([][]byte, len(pick))
	for i, a := range pick {
		out[i] = a.Bytes()
	}
	return out
}

// stewardJoinCode is a co-steward's way into a new network: a token like
// any other, which only that steward's key redeems.
func (d *Daemon) stewardJoinCode(n *node.Node, steward directory.PublicKey) (string, error) {
	code, _, err := d.issueInvite(n, "steward", 30*24*time.Hour, steward)
	return code, err
}

// The invite protocol's messages and framing are directory's (PROTOCOL.md
// §9), shared with the web app.
type (
	inviteRequest  = directory.InviteRequest
	inviteResponse = directory.InviteResponse
)

const (
	maxInviteRequest  = directory.MaxInviteRequest
	maxInviteResponse = directory.MaxInviteResponse
	// maxWelcomeRecords bounds the records a welcome carries; past it
	// the redeemer gets them by sync instead.
	maxWelcomeRecords = 192 << 10
)

func writeMsg(w io.Writer, v any) error { return directory.WriteInviteMessage(w, v) }

func readMsg(r io.Reader, v any, limit uint32) error {
	return directory.ReadInviteMessage(r, v, limit)
}

// handleInvite redeems an invite for a peer that presents its token.
func (d *Daemon) handleInvite(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	var req inviteRequest
	if err := readMsg(s, &req, maxInviteRequest); err != nil {
		s.Reset()
		return
	}
	resp := d.redeemInvite(req, s.Conn().LocalPeer(), s.Conn().RemotePeer())
	if resp.Error != "" {
		d.log.Warn("invite refused", "peer", s.Conn().RemotePeer(), "reason", resp.Error)
	}
	writeMsg(s, resp)
}

// redeemInvite answers one request that arrived over a connection from
// redeemer to inviter (this node). Everything that can be checked without
// the token is checked first, so a request that fails those checks neither
// spends a code nor learns whether its token is valid; the token is spent
// only once what it grants is durable.
func (d *Daemon) redeemInvite(req inviteRequest, inviter, redeemer peer.ID) inviteResponse {
	n := d.Node()
	if n == nil {
		return inviteResponse{Error: "the inviting node is not running a network"}
	}
	if len(req.KEM) != directory.KEMPublicKeySize {
		return inviteResponse{Error: "the request carries no valid encryption key"}
	}
	if err := directory.CheckPublicKey(req.Key); err != nil {
		return inviteResponse{Error: "the request's key is refused: " + err.Error()}
	}
	if !directory.VerifyKEMBinding(req.Key, req.KEM, req.KEMSig) {
		// Someone pairing another person's key with their own encryption
		// key gets nothing.
		return inviteResponse{Error: "the request's encryption key is not signed by its key"}
	}
	t := directory.InviteTranscript{TokenHash: directory.InviteTokenHash(req.Token), Inviter: []byte(inviter), Redeemer: []byte(redeemer), Key: req.Key, KEM: req.KEM}
	if !directory.VerifyInviteTranscript(t, req.Sig) {
		// Whoever presents the token must hold the key it asks to have
		// admitted, on this very connection.
		return inviteResponse{Error: "the request is not signed by its key for this invite and connection"}
	}
	p, err := d.invites.claim(t.TokenHash, time.Now())
	if err != nil {
		return inviteResponse{Error: err.Error()}
	}
	w, err := d.admit(n, p, req)
	if err != nil {
		d.invites.release(t.TokenHash)
		return inviteResponse{Error: err.Error()}
	}
	if err := d.invites.spend(t.TokenHash); err != nil {
		if p.Role == "steward" {
			// Nothing was published: refuse, and the code stays usable
			// once the disk is.
			d.invites.release(t.TokenHash)
			return inviteResponse{Error: "the inviting node could not record the invite as used"}
		}
		// The admission is out in the network already; the invite is
		// used in memory, so it is refused until restart.
		d.log.Error("an invite was redeemed but could not be recorded as used", "err", err)
	}
	sealed, err := directory.SealInviteWelcome(t, w)
	if err != nil {
		return inviteResponse{Error: err.Error()}
	}
	d.log.Info("invite redeemed", "role", p.Role, "key", directory.Fingerprint(req.Key))
	return inviteResponse{Welcome: sealed}
}

// admit carries out what an invite grants: it publishes a member's or a
// reader's admission (durable once Publish returns) or, for a steward join
// code, checks that the key is the steward the code was made for. It
// returns what the redeemer receives.
func (d *Daemon) admit(n *node.Node, p pendingInvite, req inviteRequest) (*directory.InviteWelcome, error) {
	st := n.State()
	ctx, cancel := context.WithTimeout(d.ctx, 20*time.Second)
	defer cancel()
	now := time.Now()
	w := &directory.InviteWelcome{Network: st.Network(), Role: p.Role}
	var admission *directory.Record
	switch p.Role {
	case "steward":
		c := st.Charter()
		if req.Key != p.For || c == nil || !slices.Contains(c.StewardKeys(), req.Key) || st.IsRevoked(req.Key) {
			return nil, errors.New("this join code is for another steward's key")
		}
	case "reader", "member":
		var body directory.Body
		if p.Role == "reader" {
			body = &directory.Reader{Key: req.Key, KEM: req.KEM, KEMSig: req.KEMSig, Issued: now.Unix()}
		} else {
			name := strings.TrimSpace(req.Name)
			if name == "" {
				return nil, errors.New("an organization must give its name (ceiba invite accept --name)")
			}
			var peers []string
			if req.Peer != "" {
				peers = []string{req.Peer}
			}
			body = &directory.Membership{Charter: st.Charter().Version, Org: req.Key, KEM: req.KEM, KEMSig: req.KEMSig, Name: name, Peers: peers, Issued: now.Unix()}
		}
		r, err := directory.NewRecord(st.Network(), body, d.me())
		if err != nil {
			return nil, err
		}
		if _, err := n.Publish(ctx, r); err != nil {
			return nil, fmt.Errorf("could not publish the admission: %w", err)
		}
		admission, w.Proposal = r, r.ProposalID()
	default:
		return nil, fmt.Errorf("invite for unknown role %q", p.Role)
	}
	d.mu.Lock()
	w.Keys = map[uint64][]byte{}
	for e, k := range d.ks.Keys {
		w.Keys[e] = slices.Clone(k[:])
	}
	d.mu.Unlock()
	w.Records = welcomeRecords(n.State(), admission)
	return w, nil
}

// welcomeRecords are the genesis charter, the current epoch and the
// admission itself, as far as they fit: with them the redeemer's node
// knows its network, its read key's epoch and its own standing before any
// sync.
func welcomeRecords(st *directory.State, admission *directory.Record) [][]byte {
	var genesis, epoch *directory.Record
	current := st.CurrentEpoch()
	for _, r := range st.RecordsOfType(directory.TypeCharter, directory.TypeEpoch) {
		b, err := r.DecodeBody()
		if err != nil {
			continue
		}
		switch b := b.(type) {
		case *directory.Charter:
			if b.Version == 1 {
				genesis = r
			}
		case *directory.Epoch:
			if b.Number == current {
				epoch = r
			}
		}
	}
	var out [][]byte
	size := 0
	for _, r := range []*directory.Record{genesis, admission, epoch} {
		if r == nil {
			continue
		}
		raw := r.Encode()
		if size+len(raw) > maxWelcomeRecords {
			continue
		}
		size += len(raw)
		out = append(out, raw)
	}
	return out
}

// AcceptInvite redeems a code: it reaches the inviting node, proves its key,
// receives the network and the read keys, and starts syncing.
func (d *Daemon) AcceptInvite(ctx context.Context, req api.AcceptRequest) (api.Status, error) {
	if d.Node() != nil {
		return api.Status{}, userErrorf("this node already belongs to a network; use another --home")
	}
	code, err := parseCode(req.Code)
	if err != nil {
		return api.Status{}, err
	}
	w, keys, err := d.redeemRemote(ctx, code, req.Name)
	if err != nil {
		return api.Status{}, err
	}
	if len(keys) == 0 {
		return api.Status{}, fmt.Errorf("the inviting node sent no read key")
	}
	if err := d.join(ctx, w.Network, w.Role, keys, code.bootstrap()); err != nil {
		return api.Status{}, err
	}
	for _, raw := range w.Records {
		// Each is verified like anything else that arrives; one that does
		// not apply is simply left for sync.
		if r, err := directory.DecodeRecord(raw); err == nil && r.Network == w.Network {
			d.Node().Publish(ctx, r)
		}
	}
	d.waitForCharter(ctx, 30*time.Second)
	return d.Status(), nil
}

func (d *Daemon) waitForCharter(ctx context.Context, limit time.Duration) {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if n := d.Node(); n != nil && n.State().Charter() != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// redeemRemote runs the invite protocol from a short-lived host: the node
// itself starts only once the keys are in hand.
func (d *Daemon) redeemRemote(ctx context.Context, code *inviteCode, name string) (*directory.InviteWelcome, directory.Keyring, error) {
	target := code.addrInfo()
	// NoListenAddrs also turns off the relay transport (go-libp2p
	// v0.51), without which a /p2p-circuit address fails with "no
	// transport for protocol"; EnableRelay after it puts the transport
	// back (for dialing; with no reservation, nothing reaches this host).
	h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.EnableRelay())
	if err != nil {
		return nil, nil, err
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Every address of the inviting node is tried at once (the swarm
	// dials them in parallel): the first is often one the invitee cannot
	// reach, such as a LAN address. A bare dial, not Connect: this host
	// holds no key, so the inviting node serves it nothing but the
	// invite protocol (node.GuestProtocolPrefix) and holds identify until
	// it gives up on an admission proof, which Connect would wait for.
	h.Peerstore().AddAddrs(target.ID, target.Addrs, peerstore.TempAddrTTL)
	c, err := h.Network().DialPeer(ctx, target.ID)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot reach the inviting node at any of its %d addresses: %w (is it running?)", len(target.Addrs), err)
	}
	// An inviter behind NAT may be reachable only through its relay; the
	// exchange is a few KiB, well within a relay's limits.
	s, err := c.NewStream(network.WithAllowLimitedConn(ctx, "an invite is a few KiB"))
	if err == nil {
		s.SetProtocol(InviteProtocol)
		if err = msmux.SelectProtoOrFail(InviteProtocol, s); err != nil {
			s.Reset()
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("the inviting node does not accept invites: %w", err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	if name == "" {
		name = d.cfg.Name
	}
	me := d.me()
	req, t, err := directory.NewInviteRequest(me, &code.InviteCode, name, []byte(target.ID), []byte(h.ID()))
	if err != nil {
		return nil, nil, err
	}
	if err := writeMsg(s, req); err != nil {
		return nil, nil, err
	}
	var resp inviteResponse
	if err := readMsg(s, &resp, maxInviteResponse); err != nil {
		return nil, nil, fmt.Errorf("no answer from the inviting node: %w", err)
	}
	if resp.Error != "" {
		return nil, nil, userErrorf("the inviting node refused: %s", resp.Error)
	}
	return directory.OpenInviteWelcome(me, t, resp.Welcome)
}
