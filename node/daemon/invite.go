package daemon

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/api"
)

// InviteProtocol is the stream protocol an invitee uses to redeem a code.
const InviteProtocol = protocol.ID("/ceiba/invite/1.0.0")

const codePrefix = "ceiba-invite:"

// inviteCode is what a person passes on (by Signal, on paper, as a QR
// code). It is a secret: whoever holds it can redeem it, once, before it
// expires. Steward join codes carry the genesis and the first epoch instead
// of a token.
type inviteCode struct {
	Network directory.NetworkID `cbor:"1,keyasint"`
	Charter directory.Hash      `cbor:"2,keyasint"`
	Role    string              `cbor:"3,keyasint"`
	Token   []byte              `cbor:"4,keyasint,omitempty"`
	Expires int64               `cbor:"5,keyasint"`
	Addrs   []string            `cbor:"6,keyasint"`
	Genesis []byte              `cbor:"7,keyasint,omitempty"`
	Epoch   []byte              `cbor:"8,keyasint,omitempty"`
}

var codeDec, _ = cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, MaxArrayElements: 64, MaxNestedLevels: 8, ExtraReturnErrors: cbor.ExtraDecErrorUnknownField}.DecMode()
var codeEnc, _ = cbor.CoreDetEncOptions().EncMode()

func (c *inviteCode) String() string {
	b, _ := codeEnc.Marshal(c)
	return codePrefix + base64.RawURLEncoding.EncodeToString(b)
}

func parseCode(s string) (*inviteCode, error) {
	s = strings.Join(strings.Fields(s), "")
	rest, ok := strings.CutPrefix(s, codePrefix)
	if !ok {
		return nil, userErrorf("this is not a Ceiba invite code (it should start with %q)", codePrefix)
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(b) > 256<<10 {
		return nil, userErrorf("the invite code is damaged (copy it again, whole)")
	}
	var c inviteCode
	if err := codeDec.Unmarshal(b, &c); err != nil {
		return nil, userErrorf("the invite code is damaged (copy it again, whole)")
	}
	if len(c.Addrs) == 0 {
		return nil, userErrorf("the invite code names no node to connect to")
	}
	return &c, nil
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
		if p.Expires < now-7*24*3600 {
			delete(b.Pending, k) // long expired: nothing left to refuse
		}
	}
	data, err := codeEnc.Marshal(b)
	if err != nil {
		return err
	}
	return directory.WriteFileAtomic(b.path, data, 0o600)
}

func tokenID(tok []byte) string {
	h := sha256.Sum256(tok)
	return hex.EncodeToString(h[:])
}

// redeem marks a token used and returns its role, or says why not.
func (b *inviteBook) redeem(tok []byte, now time.Time) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.Pending[tokenID(tok)]
	switch {
	case p == nil:
		return "", errors.New("this invite was not issued by this node")
	case p.Used:
		return "", errors.New("this invite has already been used")
	case now.Unix() > p.Expires:
		return "", fmt.Errorf("this invite expired on %s", time.Unix(p.Expires, 0).UTC().Format(time.RFC1123))
	}
	p.Used = true
	if err := b.saveLocked(); err != nil {
		p.Used = false
		return "", err
	}
	return p.Role, nil
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
	tok := make([]byte, 16)
	rand.Read(tok)
	expires := time.Now().Add(req.Expires)
	d.invites.mu.Lock()
	d.invites.Pending[tokenID(tok)] = &pendingInvite{Role: req.Role, Expires: expires.Unix()}
	err = d.invites.saveLocked()
	d.invites.mu.Unlock()
	if err != nil {
		return api.Invite{}, err
	}
	code := &inviteCode{Network: st.Network(), Charter: st.CharterID(), Role: req.Role, Token: tok, Expires: expires.Unix(), Addrs: addrStrings(n)}
	return api.Invite{Code: code.String(), Role: req.Role, Expires: expires.UTC()}, nil
}

// addrStrings are the addresses an invite carries. They become the new
// node's bootstrap list and stay there for months, so WebTransport
// addresses are left out when there are others: their certificate hashes
// rotate every two weeks or so, and each doubles the length of a code
// people copy by hand.
func addrStrings[T interface{ Addrs() []multiaddr.Multiaddr }](n T) []string {
	var out, webtransport []string
	for _, a := range n.Addrs() {
		if _, err := a.ValueForProtocol(multiaddr.P_WEBTRANSPORT); err == nil {
			webtransport = append(webtransport, a.String())
			continue
		}
		out = append(out, a.String())
	}
	if len(out) == 0 {
		return webtransport
	}
	return out
}

func (d *Daemon) stewardJoinCode(net directory.NetworkID, genesis, epoch *directory.Record) (string, error) {
	n, err := d.joined()
	if err != nil {
		return "", err
	}
	code := &inviteCode{Network: net, Charter: genesis.ProposalID(), Role: "steward", Expires: time.Now().Add(30 * 24 * time.Hour).Unix(),
		Addrs: addrStrings(n), Genesis: genesis.Encode(), Epoch: epoch.Encode()}
	return code.String(), nil
}

type inviteRequest struct {
	Token []byte              `cbor:"1,keyasint"`
	Key   directory.PublicKey `cbor:"2,keyasint"`
	KEM   []byte              `cbor:"3,keyasint"`
	Name  string              `cbor:"4,keyasint"`
	Peer  string              `cbor:"5,keyasint"`
	// KEMSig is Key's signature on KEM: the inviter seals keys to KEM
	// only when Key's holder vouches for it.
	KEMSig []byte `cbor:"6,keyasint"`
}

type inviteResponse struct {
	Error    string         `cbor:"1,keyasint,omitempty"`
	Keys     []byte         `cbor:"2,keyasint,omitempty"`
	Proposal directory.Hash `cbor:"3,keyasint"`
}

const maxInviteMessage = 64 << 10

func writeMsg(w io.Writer, v any) error {
	b, err := codeEnc.Marshal(v)
	if err != nil {
		return err
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(b)))
	if _, err := w.Write(n[:]); err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

func readMsg(r io.Reader, v any) error {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > maxInviteMessage {
		return fmt.Errorf("message of %d bytes exceeds %d", size, maxInviteMessage)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return codeDec.Unmarshal(b, v)
}

// handleInvite redeems an invite for a peer that presents its token.
func (d *Daemon) handleInvite(s network.Stream) {
	defer s.Close()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	var req inviteRequest
	if err := readMsg(s, &req); err != nil {
		s.Reset()
		return
	}
	resp := d.redeemInvite(req)
	if resp.Error != "" {
		d.log.Warn("invite refused", "peer", s.Conn().RemotePeer(), "reason", resp.Error)
	}
	writeMsg(s, resp)
}

func (d *Daemon) redeemInvite(req inviteRequest) inviteResponse {
	n := d.Node()
	if n == nil {
		return inviteResponse{Error: "the inviting node is not running a network"}
	}
	if len(req.KEM) != directory.KEMPublicKeySize {
		return inviteResponse{Error: "the request carries no valid encryption key"}
	}
	if !directory.VerifyKEMBinding(req.Key, req.KEM, req.KEMSig) {
		// Checked before the token is spent: someone pairing another
		// person's key with their own encryption key gets nothing.
		return inviteResponse{Error: "the request's encryption key is not signed by its key"}
	}
	role, err := d.invites.redeem(req.Token, time.Now())
	if err != nil {
		return inviteResponse{Error: err.Error()}
	}
	st := n.State()
	ctx, cancel := context.WithTimeout(d.ctx, 20*time.Second)
	defer cancel()
	now := time.Now()
	var body directory.Body
	switch role {
	case "reader":
		body = &directory.Reader{Key: req.Key, KEM: req.KEM, KEMSig: req.KEMSig, Issued: now.Unix()}
	case "member":
		name := strings.TrimSpace(req.Name)
		if name == "" {
			return inviteResponse{Error: "an organization must give its name (ceiba invite accept --name)"}
		}
		var peers []string
		if req.Peer != "" {
			peers = []string{req.Peer}
		}
		body = &directory.Membership{Charter: st.Charter().Version, Org: req.Key, KEM: req.KEM, KEMSig: req.KEMSig, Name: name, Peers: peers, Issued: now.Unix()}
	}
	r, err := directory.NewRecord(st.Network(), body, d.me())
	if err != nil {
		return inviteResponse{Error: err.Error()}
	}
	if _, err := n.Publish(ctx, r); err != nil {
		return inviteResponse{Error: "could not publish the admission: " + err.Error()}
	}
	d.mu.Lock()
	keys := directory.Keyring{}
	for e, k := range d.ks.Keys {
		keys[e] = k
	}
	d.mu.Unlock()
	sealed, err := directory.SealKeyring(st.Network(), directory.Recipient{Key: req.Key, KEM: req.KEM}, keys)
	if err != nil {
		return inviteResponse{Error: err.Error()}
	}
	d.log.Info("invite redeemed", "role", role, "key", directory.Fingerprint(req.Key))
	return inviteResponse{Keys: sealed, Proposal: r.ProposalID()}
}

// AcceptInvite redeems a code: it reaches the inviting node, proves the
// token, receives the read keys and starts syncing the network.
func (d *Daemon) AcceptInvite(ctx context.Context, req api.AcceptRequest) (api.Status, error) {
	if d.Node() != nil {
		return api.Status{}, userErrorf("this node already belongs to a network; use another --home")
	}
	code, err := parseCode(req.Code)
	if err != nil {
		return api.Status{}, err
	}
	if time.Now().Unix() > code.Expires {
		return api.Status{}, userErrorf("this invite expired on %s: ask for a new one", time.Unix(code.Expires, 0).UTC().Format(time.RFC1123))
	}
	var keys directory.Keyring
	if code.Role == "steward" {
		keys, err = d.acceptStewardCode(code)
	} else {
		keys, err = d.redeemRemote(ctx, code, req.Name)
	}
	if err != nil {
		return api.Status{}, err
	}
	if err := d.join(ctx, code.Network, keys, code.Addrs); err != nil {
		return api.Status{}, err
	}
	if code.Genesis != nil {
		// The steward holds the genesis and first epoch already; applying
		// them now means the node knows its network before any sync.
		for _, raw := range [][]byte{code.Genesis, code.Epoch} {
			if r, err := directory.DecodeRecord(raw); err == nil {
				d.Node().Publish(ctx, r)
			}
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

func (d *Daemon) acceptStewardCode(code *inviteCode) (directory.Keyring, error) {
	genesis, err := directory.DecodeRecord(code.Genesis)
	if err != nil || genesis.Network != code.Network {
		return nil, userErrorf("the join code's charter is not valid")
	}
	epoch, err := directory.DecodeRecord(code.Epoch)
	if err != nil || epoch.Network != code.Network || epoch.Type != directory.TypeEpoch {
		return nil, userErrorf("the join code's first epoch is not valid")
	}
	body, _ := epoch.DecodeBody()
	key, err := directory.OpenKeyPackage(d.me(), code.Network, body.(*directory.Epoch))
	if err != nil {
		return nil, userErrorf("this join code is for another steward (%v)", err)
	}
	return directory.Keyring{body.(*directory.Epoch).Number: key}, nil
}

// redeemRemote runs the invite protocol from a short-lived host: the node
// itself starts only once the keys are in hand.
func (d *Daemon) redeemRemote(ctx context.Context, code *inviteCode, name string) (directory.Keyring, error) {
	// Every address of the inviting node is tried at once: the first is
	// often loopback or a LAN address, useless from another machine.
	var addrs []multiaddr.Multiaddr
	for _, a := range code.Addrs {
		m, err := multiaddr.NewMultiaddr(a)
		if err != nil {
			continue
		}
		if _, err := peer.AddrInfoFromP2pAddr(m); err == nil {
			addrs = append(addrs, m)
		}
	}
	infos, err := peer.AddrInfosFromP2pAddrs(addrs...)
	if err != nil || len(infos) == 0 {
		return nil, userErrorf("the invite code names no reachable node address")
	}
	// NoListenAddrs also turns off the relay transport (go-libp2p
	// v0.51), without which a /p2p-circuit address fails with "no
	// transport for protocol"; EnableRelay after it puts the transport
	// back (for dialing; with no reservation, nothing reaches this host).
	h, err := libp2p.New(libp2p.NoListenAddrs, libp2p.EnableRelay())
	if err != nil {
		return nil, err
	}
	defer h.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var target peer.AddrInfo
	var dialErrs []error
	for _, ai := range infos {
		if err := h.Connect(ctx, ai); err != nil {
			dialErrs = append(dialErrs, err)
			continue
		}
		target = ai
		break
	}
	if target.ID == "" {
		return nil, fmt.Errorf("cannot reach the inviting node at any of its %d addresses: %w (is it running?)", len(addrs), errors.Join(dialErrs...))
	}
	// An inviter behind NAT may be reachable only through its relay; the
	// exchange is a few KiB, well within a relay's limits.
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "an invite is a few KiB"), target.ID, InviteProtocol)
	if err != nil {
		return nil, fmt.Errorf("the inviting node does not accept invites: %w", err)
	}
	defer s.Close()
	s.SetDeadline(time.Now().Add(30 * time.Second))
	if name == "" {
		name = d.cfg.Name
	}
	me := d.me()
	if err := writeMsg(s, inviteRequest{Token: code.Token, Key: me.Public(), KEM: me.KEMPublic(), KEMSig: me.KEMBinding(), Name: name}); err != nil {
		return nil, err
	}
	var resp inviteResponse
	if err := readMsg(s, &resp); err != nil {
		return nil, fmt.Errorf("no answer from the inviting node: %w", err)
	}
	if resp.Error != "" {
		return nil, userErrorf("the inviting node refused: %s", resp.Error)
	}
	keys, err := directory.OpenKeyring(me, code.Network, resp.Keys)
	if err != nil {
		return nil, err
	}
	return keys, nil
}
