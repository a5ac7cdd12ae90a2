// Package v1compat reads records written by Ceiba protocol version 1 (the
// format of commit a5d5f10), so that `ceiba upgrade` can carry an
// organization's identity and its own entries into version 2 (PROTOCOL.md
// §10). It only reads: there is no Seal, no signing and no state, and
// nothing here is ever used on the live network. Like package directory it
// never touches the network.
//
// Version 1 sealed a record as
//
//	0x01 || network_tag(8) || epoch(8, big endian) || nonce(24) || XChaCha20-Poly1305(read key, padded record, header as AD)
//
// where network_tag = SHA-256("ceiba network tag v1\x00" || network ID)[:8]
// and the record, padded with 0x80 then zeros to a multiple of 256 bytes,
// is the canonical CBOR map {1: version 1, 2: type, 3: network, 4: body,
// 5: [{1: key, 2: sig}...]}, each signature an Ed25519 signature over
// "ceiba/v1/<type name>" || 0x00 || network || body.
package v1compat

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/ceiba-network/ceiba/directory"
)

// The version-1 seal and record constants, as they were.
const (
	sealVersion   = 1
	formatVersion = 1
	networkTagLen = 8
	headerLen     = 1 + networkTagLen + 8 + chacha20poly1305.NonceSizeX
	padBlock      = 256
	// MaxSealedBytes bounds what Open looks at, as version 1 did.
	MaxSealedBytes = headerLen + directory.MaxRecordBytes + padBlock + chacha20poly1305.Overhead
)

// Record types of version 1; the numbers are those of version 2 for the
// types both have.
const (
	TypeCharter    uint8 = 1
	TypeMembership uint8 = 2
	TypeReader     uint8 = 3
	TypeEntry      uint8 = 4
	TypeRevocation uint8 = 5
	TypeEpoch      uint8 = 6
	TypeApproval   uint8 = 7
	TypeManifest   uint8 = 8
)

var typeNames = map[uint8]string{
	TypeCharter: "charter", TypeMembership: "membership", TypeReader: "reader", TypeEntry: "entry",
	TypeRevocation: "revocation", TypeEpoch: "epoch", TypeApproval: "approval", TypeManifest: "manifest",
}

// Errors name why a stored record was not read. ErrNotVersion1 is a record
// of another seal version (not this package's to judge); the others mean
// the record is damaged or was not made by the key it names.
var (
	ErrNotVersion1  = errors.New("not sealed by protocol version 1")
	ErrMalformed    = errors.New("malformed version-1 record")
	ErrWrongNetwork = errors.New("sealed for another network")
	ErrNoKey        = errors.New("sealed under an epoch this home holds no key for")
	ErrDecrypt      = errors.New("does not open with the read key (damaged or tampered)")
	ErrBadSignature = errors.New("signature does not verify (tampered or forged)")
)

// Record is a version-1 record whose signatures have all been checked.
type Record struct {
	Version uint8       `cbor:"1,keyasint"`
	Type    uint8       `cbor:"2,keyasint"`
	Network [32]byte    `cbor:"3,keyasint"`
	Body    []byte      `cbor:"4,keyasint"`
	Sigs    []Signature `cbor:"5,keyasint"`
}

// Signature is one signer's Ed25519 signature on a version-1 record.
type Signature struct {
	Key directory.PublicKey `cbor:"1,keyasint"`
	Sig []byte              `cbor:"2,keyasint"`
}

// Signers lists the keys whose signatures the record carries.
func (r *Record) Signers() []directory.PublicKey {
	out := make([]directory.PublicKey, len(r.Sigs))
	for i, s := range r.Sigs {
		out[i] = s.Key
	}
	return out
}

// TypeName is the version-1 name of the record's type.
func (r *Record) TypeName() string { return typeNames[r.Type] }

// ProposalID is version 1's proposal identity of the record (of the
// approved proposal for an approval): records that say the same thing
// share it, whoever signed them.
func (r *Record) ProposalID() directory.Hash {
	t, body := r.Type, r.Body
	if r.Type == TypeApproval {
		if a, err := r.Approval(); err == nil {
			t, body = a.Of, a.Proposal
		}
	}
	h := sha256.New()
	h.Write([]byte("ceiba proposal v1\x00"))
	h.Write([]byte{t})
	h.Write(r.Network[:])
	h.Write(body)
	var out directory.Hash
	h.Sum(out[:0])
	return out
}

// NetworkTag is version 1's public network label in the seal header.
func NetworkTag(net directory.NetworkID) [networkTagLen]byte {
	h := sha256.Sum256(append([]byte("ceiba network tag v1\x00"), net[:]...))
	var t [networkTagLen]byte
	copy(t[:], h[:])
	return t
}

// IsVersion1 reports whether sealed carries version 1's seal header, without
// opening it.
func IsVersion1(sealed []byte) bool { return len(sealed) > 0 && sealed[0] == sealVersion }

// Open decrypts a version-1 sealed record with the read key of the epoch
// its header names, decodes it and checks every signature on it. It checks
// nothing a version-1 state would have (who may sign what): callers decide
// what a signer's record means.
func Open(sealed []byte, net directory.NetworkID, keys directory.Keyring) (*Record, error) {
	if len(sealed) == 0 || sealed[0] != sealVersion {
		return nil, ErrNotVersion1
	}
	if len(sealed) > MaxSealedBytes {
		return nil, fmt.Errorf("%w: %d bytes sealed", ErrMalformed, len(sealed))
	}
	if len(sealed) < headerLen+chacha20poly1305.Overhead {
		return nil, fmt.Errorf("%w: shorter than a sealed header", ErrMalformed)
	}
	if tag := NetworkTag(net); !hmac.Equal(sealed[1:1+networkTagLen], tag[:]) {
		return nil, ErrWrongNetwork
	}
	epoch := binary.BigEndian.Uint64(sealed[1+networkTagLen:])
	key, ok := keys[epoch]
	if !ok {
		return nil, fmt.Errorf("%w (epoch %d)", ErrNoKey, epoch)
	}
	aead, _ := chacha20poly1305.NewX(key[:])
	padded, err := aead.Open(nil, sealed[1+networkTagLen+8:headerLen], sealed[headerLen:], sealed[:headerLen])
	if err != nil {
		return nil, fmt.Errorf("%w (epoch %d)", ErrDecrypt, epoch)
	}
	end := len(padded) - 1
	for end >= 0 && padded[end] == 0 {
		end--
	}
	if end < 0 || padded[end] != 0x80 {
		return nil, fmt.Errorf("%w: bad padding", ErrMalformed)
	}
	r, err := DecodeRecord(padded[:end])
	if err != nil {
		return nil, err
	}
	if r.Network != net {
		return nil, ErrWrongNetwork
	}
	return r, nil
}

// DecodeRecord parses a version-1 record's canonical encoding and checks
// its version, type and every signature, as version 1 did.
func DecodeRecord(data []byte) (*Record, error) {
	var r Record
	if err := unmarshalCanonical(data, &r); err != nil {
		return nil, err
	}
	if r.Version != formatVersion {
		return nil, fmt.Errorf("%w: format version %d", ErrMalformed, r.Version)
	}
	name, ok := typeNames[r.Type]
	if !ok {
		return nil, fmt.Errorf("%w: unknown type %d", ErrMalformed, r.Type)
	}
	if len(r.Sigs) == 0 {
		return nil, fmt.Errorf("%w: %s record carries no signature", ErrBadSignature, name)
	}
	for i := 1; i < len(r.Sigs); i++ {
		if bytes.Compare(r.Sigs[i-1].Key[:], r.Sigs[i].Key[:]) >= 0 {
			return nil, fmt.Errorf("%w: signatures not in canonical order", ErrMalformed)
		}
	}
	domain, msg := "ceiba/v1/"+name, signedMessage(r.Network, r.Body)
	if r.Type == TypeApproval {
		// An approval's signature is one on the proposal itself.
		a, err := r.Approval()
		if err != nil {
			return nil, err
		}
		inner, ok := typeNames[a.Of]
		if !ok || a.Of == TypeApproval || len(r.Sigs) != 1 {
			return nil, fmt.Errorf("%w: approval of type %d with %d signatures", ErrMalformed, a.Of, len(r.Sigs))
		}
		domain, msg = "ceiba/v1/"+inner, signedMessage(r.Network, a.Proposal)
	}
	for _, s := range r.Sigs {
		if len(s.Sig) != ed25519.SignatureSize || directory.CheckPublicKey(s.Key) != nil ||
			!ed25519.Verify(s.Key[:], signingInput(domain, msg), s.Sig) {
			return nil, fmt.Errorf("%w: %s record, signer %s", ErrBadSignature, name, directory.Fingerprint(s.Key))
		}
	}
	return &r, nil
}

func signedMessage(net [32]byte, body []byte) []byte {
	return append(net[:len(net):len(net)], body...)
}

func signingInput(domain string, msg []byte) []byte {
	b := make([]byte, 0, len(domain)+1+len(msg))
	b = append(b, domain...)
	b = append(b, 0)
	return append(b, msg...)
}

// The version-1 bodies the upgrade reads. Entry is version 2's type: its
// encoding did not change.

// Membership admitted an organization (threshold of stewards).
type Membership struct {
	Charter uint64              `cbor:"1,keyasint"`
	Org     directory.PublicKey `cbor:"2,keyasint"`
	KEM     []byte              `cbor:"3,keyasint"`
	Name    string              `cbor:"4,keyasint"`
	Peers   []string            `cbor:"5,keyasint,omitempty"`
	Issued  int64               `cbor:"6,keyasint"`
}

// Reader admitted a reader's key (one member's signature).
type Reader struct {
	Key     directory.PublicKey `cbor:"1,keyasint"`
	KEM     []byte              `cbor:"2,keyasint"`
	Label   string              `cbor:"3,keyasint,omitempty"`
	Issued  int64               `cbor:"4,keyasint"`
	Expires int64               `cbor:"5,keyasint,omitempty"`
}

// Revocation rejected a key (the key itself, or a threshold of stewards).
type Revocation struct {
	Key     directory.PublicKey `cbor:"1,keyasint"`
	Charter uint64              `cbor:"2,keyasint,omitempty"`
	Reason  string              `cbor:"3,keyasint,omitempty"`
	Issued  int64               `cbor:"4,keyasint"`
}

// Steward is one steward of a version-1 charter.
type Steward struct {
	Key  directory.PublicKey `cbor:"1,keyasint"`
	KEM  []byte              `cbor:"2,keyasint"`
	Name string              `cbor:"3,keyasint"`
}

// Charter is a version-1 charter; the fields after Threshold are kept
// only so that the body decodes canonically.
type Charter struct {
	Name      string          `cbor:"1,keyasint"`
	Version   uint64          `cbor:"2,keyasint"`
	Previous  directory.Hash  `cbor:"3,keyasint"`
	Stewards  []Steward       `cbor:"4,keyasint"`
	Threshold uint8           `cbor:"5,keyasint"`
	Policy    cbor.RawMessage `cbor:"6,keyasint"`
	Issued    int64           `cbor:"7,keyasint"`
	Salt      []byte          `cbor:"8,keyasint,omitempty"`
}

// Approval is one steward's signature on a proposal.
type Approval struct {
	Of       uint8  `cbor:"1,keyasint"`
	Proposal []byte `cbor:"2,keyasint"`
}

// Entry decodes an entry record's body and checks what version 1 checked
// of it that version 2 relies on.
func (r *Record) Entry() (*directory.Entry, error) {
	var e directory.Entry
	if err := r.body(TypeEntry, &e); err != nil {
		return nil, err
	}
	if e.ID == "" || e.Seq == 0 || e.Expires <= e.Issued || e.Deleted != (e.Service == nil) {
		return nil, fmt.Errorf("%w: entry fields", ErrMalformed)
	}
	return &e, nil
}

// Membership decodes a membership record's body.
func (r *Record) Membership() (*Membership, error) {
	var m Membership
	return &m, r.body(TypeMembership, &m)
}

// Reader decodes a reader record's body.
func (r *Record) Reader() (*Reader, error) {
	var b Reader
	return &b, r.body(TypeReader, &b)
}

// Revocation decodes a revocation record's body.
func (r *Record) Revocation() (*Revocation, error) {
	var b Revocation
	return &b, r.body(TypeRevocation, &b)
}

// Charter decodes a charter record's body.
func (r *Record) Charter() (*Charter, error) {
	var c Charter
	return &c, r.body(TypeCharter, &c)
}

// Approval decodes an approval record's body.
func (r *Record) Approval() (*Approval, error) {
	var a Approval
	return &a, r.body(TypeApproval, &a)
}

// ProposalBody is the body an approval approves, as a record of that type
// signed by the approval's signer, for the typed accessors.
func (r *Record) ProposalBody() (*Record, error) {
	a, err := r.Approval()
	if err != nil {
		return nil, err
	}
	return &Record{Version: r.Version, Type: a.Of, Network: r.Network, Body: a.Proposal, Sigs: r.Sigs}, nil
}

func (r *Record) body(t uint8, v any) error {
	if r.Type != t {
		return fmt.Errorf("%w: a %s record, not a %s", ErrMalformed, typeNames[r.Type], typeNames[t])
	}
	return unmarshalCanonical(r.Body, v)
}

var (
	encMode cbor.EncMode
	decMode cbor.DecMode
)

func init() {
	var err error
	if encMode, err = cbor.CoreDetEncOptions().EncMode(); err != nil {
		panic(err)
	}
	// Version 1's decoding limits.
	decMode, err = cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		MaxNestedLevels:   12,
		MaxArrayElements:  4096,
		MaxMapPairs:       256,
		IndefLength:       cbor.IndefLengthForbidden,
		TagsMd:            cbor.TagsForbidden,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		UTF8:              cbor.UTF8RejectInvalid,
	}.DecMode()
	if err != nil {
		panic(err)
	}
}

// unmarshalCanonical decodes data into v and insists it is exactly v's
// deterministic encoding, as version 1 did: a record has one encoding.
func unmarshalCanonical(data []byte, v any) error {
	if len(data) > directory.MaxRecordBytes {
		return fmt.Errorf("%w: %d bytes", ErrMalformed, len(data))
	}
	rest, err := decMode.UnmarshalFirst(data, v)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	again, err := encMode.Marshal(v)
	if err != nil || !bytes.Equal(again, data) {
		return fmt.Errorf("%w: not canonical", ErrMalformed)
	}
	return nil
}
