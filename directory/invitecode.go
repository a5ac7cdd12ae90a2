package directory

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/fxamacker/cbor/v2"
)

// The invite protocol's formats (PROTOCOL.md §9), shared by the node and
// the web app's core so both read a code and frame a redemption the same
// way. Checks that need libp2p (that Peer is a peer ID, that each address
// is a multiaddr) are the caller's.

// InviteCodePrefix starts every invite code.
const InviteCodePrefix = "ceiba-invite:"

// Invite code and message limits.
const (
	InviteTokenSize    = 16
	MaxInviteCodeAddrs = 8
	// MaxInviteRequest bounds a redemption request: a few KiB, the KEM
	// key being the bulk of it.
	MaxInviteRequest = 64 << 10
	// MaxInviteResponse bounds an answer: it carries the genesis and the
	// current epoch, whose pages grow with the network.
	MaxInviteResponse = 1 << 20
)

// InviteCode is what a person passes on (by Signal, on paper, as a QR
// code). It is a secret: whoever holds it can redeem it, once, before it
// expires. It carries only what reaching the inviting node and redeeming
// once take: that node's peer ID, a few of its addresses and a random
// token. The role, the expiry and everything about the network stay on the
// inviting node, which hands the network over only after redemption, sealed
// to the redeemer's key; a photographed code tells nothing about the
// network it opens.
type InviteCode struct {
	Peer  []byte   `cbor:"1,keyasint"` // binary libp2p peer ID
	Addrs [][]byte `cbor:"2,keyasint"` // binary multiaddrs, without /p2p/<Peer>
	Token []byte   `cbor:"3,keyasint"`
}

// Errors of ParseInviteCode, worded for the person who pasted the code.
var (
	ErrNotInviteCode     = fmt.Errorf("this is not a Ceiba invite code (it should start with %q)", InviteCodePrefix)
	ErrInviteCodeDamaged = errors.New("the invite code is damaged, or was made by an older version of Ceiba (copy it again, whole, or ask for a new one)")
	ErrInviteCodeNoAddrs = errors.New("the invite code names no node to connect to")
)

var inviteDec, _ = cbor.DecOptions{DupMapKey: cbor.DupMapKeyEnforcedAPF, MaxArrayElements: 64, MaxNestedLevels: 8, ExtraReturnErrors: cbor.ExtraDecErrorUnknownField}.DecMode()

// String is the code as people pass it on.
func (c *InviteCode) String() string {
	b, _ := encMode.Marshal(c)
	return InviteCodePrefix + base64.RawURLEncoding.EncodeToString(b)
}

// ParseInviteCode reads a code as pasted: whitespace anywhere (a code
// broken over lines) is ignored.
func ParseInviteCode(s string) (*InviteCode, error) {
	s = strings.Join(strings.Fields(s), "")
	rest, ok := strings.CutPrefix(s, InviteCodePrefix)
	if !ok {
		return nil, ErrNotInviteCode
	}
	b, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil || len(b) > 4<<10 {
		return nil, ErrInviteCodeDamaged
	}
	var c InviteCode
	if err := inviteDec.Unmarshal(b, &c); err != nil {
		return nil, ErrInviteCodeDamaged
	}
	if len(c.Peer) == 0 || len(c.Token) != InviteTokenSize || len(c.Addrs) > MaxInviteCodeAddrs {
		return nil, ErrInviteCodeDamaged
	}
	if len(c.Addrs) == 0 {
		return nil, ErrInviteCodeNoAddrs
	}
	return &c, nil
}

// InviteRequest is what a redeemer sends on the invite stream.
type InviteRequest struct {
	Token []byte    `cbor:"1,keyasint"`
	Key   PublicKey `cbor:"2,keyasint"`
	KEM   []byte    `cbor:"3,keyasint"`
	Name  string    `cbor:"4,keyasint"`
	Peer  string    `cbor:"5,keyasint"`
	// KEMSig is Key's signature on KEM: the inviter seals keys to KEM
	// only when Key's holder vouches for it.
	KEMSig []byte `cbor:"6,keyasint"`
	// Sig is Key's signature on the transcript (InviteTranscript) of this
	// token, this connection and these keys: the redeemer holds the key it
	// asks to have admitted.
	Sig []byte `cbor:"7,keyasint"`
}

// InviteResponse is the inviting node's answer.
type InviteResponse struct {
	Error string `cbor:"1,keyasint,omitempty"`
	// Welcome is an InviteWelcome sealed to the request's KEM key.
	Welcome []byte `cbor:"2,keyasint,omitempty"`
}

// NewInviteRequest signs a redemption of code by id over the connection
// between the inviter's and the redeemer's peer IDs (binary), and returns
// the request with the transcript that opens the answer.
func NewInviteRequest(id *Identity, code *InviteCode, name string, inviter, redeemer []byte) (InviteRequest, InviteTranscript, error) {
	t := InviteTranscript{TokenHash: InviteTokenHash(code.Token), Inviter: inviter, Redeemer: redeemer, Key: id.Public(), KEM: id.KEMPublic()}
	sig, err := SignInviteTranscript(id, t)
	if err != nil {
		return InviteRequest{}, InviteTranscript{}, err
	}
	return InviteRequest{Token: code.Token, Key: id.Public(), KEM: id.KEMPublic(), KEMSig: id.KEMBinding(), Name: name, Sig: sig}, t, nil
}

// WriteInviteMessage frames v as the invite protocol does: a 4-byte
// big-endian length, then deterministic CBOR.
func WriteInviteMessage(w io.Writer, v any) error {
	b, err := encMode.Marshal(v)
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

// ReadInviteMessage reads one framed message of at most limit bytes into v.
func ReadInviteMessage(r io.Reader, v any, limit uint32) error {
	var n [4]byte
	if _, err := io.ReadFull(r, n[:]); err != nil {
		return err
	}
	size := binary.BigEndian.Uint32(n[:])
	if size > limit {
		return fmt.Errorf("message of %d bytes exceeds %d", size, limit)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(r, b); err != nil {
		return err
	}
	return inviteDec.Unmarshal(b, v)
}
