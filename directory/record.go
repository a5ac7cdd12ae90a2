package directory

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync/atomic"
	"unsafe"
)

// FormatVersion is the record format this package writes and accepts.
const FormatVersion = 2

// RecordRules numbers this build's field checks of record bodies. A node
// re-reading its own store skips an entry's field checks only if the
// build that checked it had the same rules (VouchedAll, which
// node/checkpoint.go records): whoever tightens or loosens a check
// (entry.go, charter.go, ...) must increase it, or stored records that
// the new checks would refuse stay in use.
const RecordRules = 1

// RecordType names what a record says. The numbers are part of the wire
// format and never change meaning.
type RecordType uint8

const (
	TypeCharter    RecordType = 1
	TypeMembership RecordType = 2
	TypeReader     RecordType = 3
	TypeEntry      RecordType = 4
	TypeRevocation RecordType = 5
	TypeEpoch      RecordType = 6
	TypeApproval   RecordType = 7
	TypeManifest   RecordType = 8
	TypeEpochPage  RecordType = 9
	TypeEvidence   RecordType = 10
	TypeHeartbeat  RecordType = 11
)

var typeNames = map[RecordType]string{
	TypeCharter:    "charter",
	TypeMembership: "membership",
	TypeReader:     "reader",
	TypeEntry:      "entry",
	TypeRevocation: "revocation",
	TypeEpoch:      "epoch",
	TypeApproval:   "approval",
	TypeManifest:   "manifest",
	TypeEpochPage:  "epoch-page",
	TypeEvidence:   "evidence",
	TypeHeartbeat:  "heartbeat",
}

func (t RecordType) String() string {
	if n, ok := typeNames[t]; ok {
		return n
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// DecodeRevocation decodes and checks the body of a revocation, as an
// approval carries it.
func DecodeRevocation(body []byte) (*Revocation, error) {
	b, err := decodeBody(TypeRevocation, body)
	if err != nil {
		return nil, err
	}
	return b.(*Revocation), nil
}

// ApplyRank orders records for applying a batch: the governance stewards
// sign (approvals included) before reader grants, and those before
// entries. The state does not depend on the order; this one only spares
// records waiting in the pool (within its quotas) for the standing of
// their signer.
func ApplyRank(t RecordType) int {
	switch t {
	case TypeCharter:
		return 0
	case TypeApproval, TypeMembership, TypeRevocation, TypeEpoch, TypeHeartbeat:
		return 1
	case TypeReader, TypeEpochPage:
		return 2
	}
	return 3
}

// domain is the signature domain-separation prefix of a record type.
func (t RecordType) domain() string { return "ceiba/v1/" + t.String() }

// NetworkID identifies one Ceiba network: the hash of its genesis charter.
type NetworkID [32]byte

func (n NetworkID) String() string { return fmt.Sprintf("%x", n[:]) }

// Hash is a SHA-256 digest used for record and proposal identities.
type Hash [32]byte

func (h Hash) String() string { return fmt.Sprintf("%x", h[:]) }

// Short is the first 12 hex characters, for people and logs.
func (h Hash) Short() string { return h.String()[:12] }

// Record is a signed statement, the unit that nodes store, gossip and apply.
// Body is the canonical encoding of one of the body types (Charter, Entry,
// ...); every signature covers the record's type, network and body.
type Record struct {
	Version uint8       `cbor:"1,keyasint"`
	Type    RecordType  `cbor:"2,keyasint"`
	Network NetworkID   `cbor:"3,keyasint"`
	Body    []byte      `cbor:"4,keyasint"`
	Sigs    []Signature `cbor:"5,keyasint"`

	// verified is the hash of the encoding DecodeRecord checked, signatures
	// and all, and body the body it decoded (bodies are never changed once
	// decoded); zero and nil if it did not. State.Apply trusts them instead
	// of verifying and decoding again only while the record still hashes to
	// verified, so a decoded record changed afterwards is checked afresh.
	verified Hash
	body     Body
	// facts are the fields the state reads of an entry whose body was not
	// decoded (OpenVerified with VouchedAll): State.Apply takes them in
	// place of the body, and anything else decodes the body from Body.
	facts *Entry
	// verifiedSize is the length of the encoding verified names, and
	// verifiedPrint a keyed fingerprint of the fields as they were then
	// (see fingerprint): Hash answers from them without encoding the
	// record again, which was a sixth of what applying an entry cost at
	// start-up. A record changed since no longer matches its print.
	verifiedSize  int
	verifiedPrint uint64
	// openedUnder is the epoch whose key opened the record in Open (zero
	// with opened false for a record that did not come from a seal): a
	// node weighs records newly sealed under a superseded key differently.
	openedUnder uint64
	opened      bool
	// sum caches the hash of a large record that was not verified (one
	// this node makes, such as a steward's rotation pages; a verified one
	// answers from verifiedPrint), see hashCacheMin: a record is hashed
	// many times on its way (sync, parking, the state, the store), and
	// re-encoding a 64 KiB rotation page for each was most of a rotation's
	// delivery cost. The fields are exported and may
	// be changed after hashing (AddSignature does, tests tamper), so the
	// cache keeps its own copy of what it covers and is used only while
	// the record still equals that copy. (An atomic.Value, not an
	// atomic.Pointer, so that a Record may still be copied: a copy shares
	// the cache, which stays exact for it.)
	sum atomic.Value // *recordSum
}

// hashCacheMin is the body size from which Hash is cached; below it,
// encoding costs little and the cache would only add memory to every entry
// a node holds.
const hashCacheMin = 4 << 10

// bodySeed keys the fingerprints recordSum keeps of bodies: random for
// each process, so no input can be made to collide with another.
var bodySeed = maphash.MakeSeed()

// recordSum is a record's hash and encoded size, and what they were
// computed from: the body as a reference and a keyed fingerprint of its
// bytes, the other fields as copies. It is never changed once made.
// It once kept a copy of the body, to compare with exactly: a second copy
// of every 64 KiB rotation page a node holds, for every rotation it has
// seen (issue 14). A body changed in place after hashing is still caught
// unless its new bytes collide with the old under a random 64-bit key
// (chance 2^-64, and only code in this process can change them); a body
// replaced by another slice is caught by the reference.
type recordSum struct {
	hash     Hash
	size     int
	version  uint8
	typ      RecordType
	network  NetworkID
	body     []byte
	bodyHash uint64
	sigs     []Signature
}

// matches reports whether r is still the record c was computed from.
func (c *recordSum) matches(r *Record) bool {
	if c.version != r.Version || c.typ != r.Type || c.network != r.Network ||
		len(c.sigs) != len(r.Sigs) || len(c.body) != len(r.Body) ||
		unsafe.SliceData(c.body) != unsafe.SliceData(r.Body) ||
		maphash.Bytes(bodySeed, r.Body) != c.bodyHash {
		return false
	}
	for i, s := range r.Sigs {
		if s.Key != c.sigs[i].Key || !bytes.Equal(s.Sig, c.sigs[i].Sig) {
			return false
		}
	}
	return true
}

// remember caches hash and size for r as it is now, if r is large enough.
func (r *Record) remember(hash Hash, size int) {
	if len(r.Body) < hashCacheMin {
		return
	}
	sigs := make([]Signature, len(r.Sigs))
	for i, s := range r.Sigs {
		sigs[i] = Signature{Key: s.Key, Sig: slices.Clone(s.Sig)}
	}
	r.sum.Store(&recordSum{hash: hash, size: size, version: r.Version, typ: r.Type,
		network: r.Network, body: r.Body, bodyHash: maphash.Bytes(bodySeed, r.Body), sigs: sigs})
}

// hashAndSize returns the record's hash and the length of its canonical
// encoding, from the cache while r is unchanged.
func (r *Record) hashAndSize() (Hash, int) {
	if r.verified != (Hash{}) && r.verifiedPrint == r.fingerprint() {
		return r.verified, r.verifiedSize
	}
	if c, _ := r.sum.Load().(*recordSum); c != nil && c.matches(r) {
		return c.hash, c.size
	}
	enc := r.Encode()
	h := Hash(sha256.Sum256(enc))
	r.remember(h, len(enc))
	return h, len(enc)
}

// fingerprint is a keyed 64-bit hash of every encoded field of r. A record
// changed after it was verified is caught unless its new fields collide
// with the old under a random key (chance 2^-64; only code in this process
// can change them).
func (r *Record) fingerprint() uint64 {
	var m maphash.Hash
	m.SetSeed(bodySeed)
	m.WriteByte(r.Version)
	m.WriteByte(byte(r.Type))
	m.Write(r.Network[:])
	writeLen := func(n int) {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(n))
		m.Write(b[:])
	}
	writeLen(len(r.Body))
	m.Write(r.Body)
	writeLen(len(r.Sigs))
	for _, s := range r.Sigs {
		m.Write(s.Key[:])
		writeLen(len(s.Sig))
		m.Write(s.Sig)
	}
	return m.Sum64()
}

// markVerified records that r, as it is now, encodes to size bytes hashing
// to h and was checked in full (or vouched for by this node's own
// checkpoint), with body its decoded body.
func (r *Record) markVerified(h Hash, size int, body Body) {
	r.verified, r.verifiedSize, r.body = h, size, body
	r.verifiedPrint = r.fingerprint()
}

// OpenedUnder reports the epoch of the read key that opened r, if r came
// out of Open.
func (r *Record) OpenedUnder() (uint64, bool) { return r.openedUnder, r.opened }

// Signature is one signer's Ed25519 signature over a record's signing input.
type Signature struct {
	Key PublicKey `cbor:"1,keyasint"`
	Sig []byte    `cbor:"2,keyasint"`
}

// Body is implemented by every record body type.
type Body interface {
	RecordType() RecordType
	// check validates the fields that need no state: formats, lengths,
	// enumerations.
	check() error
}

// signedMessage is what every signer of a record of type t signs.
func signedMessage(net NetworkID, body []byte) []byte {
	return append(net[:len(net):len(net)], body...)
}

// NewRecord encodes body and signs it with each signer.
func NewRecord(net NetworkID, body Body, signers ...*Identity) (*Record, error) {
	if err := body.check(); err != nil {
		return nil, &RejectError{Type: body.RecordType(), Reason: ErrInvalid, Detail: err.Error()}
	}
	r := &Record{Version: FormatVersion, Type: body.RecordType(), Network: net, Body: marshal(body)}
	for _, s := range signers {
		r.AddSignature(s)
	}
	return r, nil
}

// AddSignature signs r with id, replacing any earlier signature by the same
// key, and keeps signatures in their canonical order.
func (r *Record) AddSignature(id *Identity) {
	domain := r.Type.domain()
	if r.Type == TypeApproval {
		// An approval's signature is a signature on the proposal itself,
		// so it can be merged with signatures collected any other way.
		var a Approval
		if err := unmarshalCanonical(r.Body, &a); err == nil {
			domain = a.Of.domain()
			sig := id.signDomain(domain, signedMessage(r.Network, a.Proposal))
			r.putSig(Signature{Key: id.Public(), Sig: sig})
			return
		}
	}
	r.putSig(Signature{Key: id.Public(), Sig: id.signDomain(domain, signedMessage(r.Network, r.Body))})
}

func (r *Record) putSig(s Signature) {
	r.Sigs = slices.DeleteFunc(r.Sigs, func(o Signature) bool { return o.Key == s.Key })
	r.Sigs = append(r.Sigs, s)
	slices.SortFunc(r.Sigs, func(a, b Signature) int { return bytes.Compare(a.Key[:], b.Key[:]) })
}

// Encode returns the record's canonical encoding: what is sealed and hashed.
func (r *Record) Encode() []byte { return marshal(r) }

// Hash identifies this exact record, signatures included.
func (r *Record) Hash() Hash {
	h, _ := r.hashAndSize()
	return h
}

// ProposalID identifies what the record says, independent of who signed it:
// an Approval and a record carrying the same body share it.
func (r *Record) ProposalID() Hash {
	t, body := r.Type, r.Body
	if r.Type == TypeApproval {
		var a Approval
		if unmarshalCanonical(r.Body, &a) == nil {
			t, body = a.Of, a.Proposal
		}
	}
	return proposalID(r.Network, t, body)
}

func proposalID(net NetworkID, t RecordType, body []byte) Hash {
	return domainHash("ceiba proposal v1", []byte{byte(t)}, net[:], body)
}

// domainHash is SHA-256 of domain, a zero byte and parts, concatenated:
// every hash the protocol defines names its use first, so no two uses can
// ever produce the same input.
func domainHash(domain string, parts ...[]byte) Hash {
	h := sha256.New()
	h.Write([]byte(domain))
	h.Write([]byte{0})
	for _, p := range parts {
		h.Write(p)
	}
	var out Hash
	h.Sum(out[:0])
	return out
}

// DecodeRecord parses a record's canonical encoding and checks everything
// that needs no state: version, type, body fields and every signature.
func DecodeRecord(data []byte) (*Record, error) {
	u, err := decodeUnverified(data, sha256.Sum256(data), true)
	if err != nil {
		return nil, err
	}
	return u.Verify()
}

// Unverified is a record decoded, with its body decoded and field-checked,
// whose signatures have not been checked yet. It is not a Record, so that
// nothing can apply, store or forward it: only Verify turns it into one.
// It exists so that a node can refuse a record for a reason that needs no
// trust in who signed it (Open's callers: an author already over its
// update rate) without spending a signature check on it.
type Unverified struct {
	r     Record
	body  Body
	facts *Entry // for an entry decoded as facts only (factsOnly)
	hash  Hash
	size  int // of the canonical encoding
}

// decodeUnverified parses a record's canonical encoding, whose hash is h,
// and checks everything but the signatures. canonical is whether to check
// that data is the canonical encoding of what it decodes to (the record's
// and its body's); only OpenVerified, for bytes whose hash this node
// checked before in full, leaves it out.
func decodeUnverified(data []byte, h Hash, canonical bool) (*Unverified, error) {
	return decodeStored(data, h, canonical, false)
}

// decodeStored is decodeUnverified that, with factsOnly, reads of an
// entry's body only the facts the state keeps (VouchedAll).
func decodeStored(data []byte, h Hash, canonical, factsOnly bool) (*Unverified, error) {
	u := &Unverified{}
	var f entryFactsWire
	read := false
	if factsOnly {
		u.r, f, read = decodeVouchedEntry(data)
	}
	if !read {
		if err := unmarshalChecked(data, &u.r, canonical); err != nil {
			return nil, &RejectError{Reason: unwrapSentinel(err), Detail: err.Error()}
		}
	}
	if factsOnly && u.r.Type == TypeEntry {
		if err := u.r.checkEnvelope(); err != nil {
			return nil, err
		}
		if !read {
			if err := claimMode.Unmarshal(u.r.Body, &f); err != nil {
				return nil, &RejectError{Type: u.r.Type, Reason: ErrMalformed, Detail: err.Error()}
			}
		}
		u.facts = &Entry{ID: f.ID, Seq: f.Seq, Issued: f.Issued, Expires: f.Expires, Deleted: f.Deleted}
		u.hash, u.size = h, len(data)
		return u, nil
	}
	body, err := u.r.checkUnsignedWith(canonical)
	if err != nil {
		return nil, err
	}
	// data is the canonical encoding of r, so its hash is r's.
	u.body, u.hash, u.size = body, h, len(data)
	return u, nil
}

// Type is the record's type.
func (u *Unverified) Type() RecordType { return u.r.Type }

// Hash is the record's hash.
func (u *Unverified) Hash() Hash { return u.hash }

// Signers are the keys the record claims to be signed by, unchecked.
func (u *Unverified) Signers() []PublicKey {
	out := make([]PublicKey, len(u.r.Sigs))
	for i, s := range u.r.Sigs {
		out[i] = s.Key
	}
	return out
}

// Entry is the record's body if it is an entry; its fields are checked,
// its author is not.
func (u *Unverified) Entry() (*Entry, bool) {
	e, ok := u.body.(*Entry)
	return e, ok
}

// Verify checks every signature and returns the record.
func (u *Unverified) Verify() (*Record, error) {
	if err := u.r.verifySigs(u.body); err != nil {
		return nil, err
	}
	r := u.r
	r.markVerified(u.hash, u.size, u.body)
	return &r, nil
}

// vouched returns the record without checking its signatures or its
// signers' keys (decoding a key's point costs a third of a verification):
// only for a hash whose signatures were checked before (OpenVerified).
func (u *Unverified) vouched() *Record {
	r := u.r
	r.markVerified(u.hash, u.size, u.body)
	r.facts = u.facts
	return &r
}

// entryFactsWire is what decodeStored reads of an entry's body: the
// fields of entryFacts, and the ID that names the slot. The decoder skips
// the service without decoding it.
type entryFactsWire struct {
	ID      string `cbor:"1,keyasint"`
	Seq     uint64 `cbor:"2,keyasint"`
	Issued  int64  `cbor:"3,keyasint"`
	Expires int64  `cbor:"4,keyasint"`
	Deleted bool   `cbor:"5,keyasint,omitempty"`
}

// Verify checks the record without any state: known version and type, a
// body that decodes canonically and passes its field checks, signatures in
// canonical order from distinct keys, and every signature valid.
func (r *Record) Verify() error {
	_, err := r.verify()
	return err
}

// verify is Verify, returning the body it decoded.
func (r *Record) verify() (Body, error) {
	body, err := r.checkUnsigned()
	if err != nil {
		return nil, err
	}
	return body, r.verifySigs(body)
}

// checkUnsigned is verify without the signature checks: what it costs
// nothing but decoding to check.
func (r *Record) checkUnsigned() (Body, error) { return r.checkUnsignedWith(true) }

// checkUnsignedWith is checkUnsigned, leaving out the bodies' canonical
// checks if canonical is false (decodeUnverified).
func (r *Record) checkUnsignedWith(canonical bool) (Body, error) {
	if err := r.checkEnvelope(); err != nil {
		return nil, err
	}
	body, err := r.decodeBodyWith(canonical)
	if err != nil {
		return nil, err
	}
	if a, ok := body.(*Approval); ok {
		if len(r.Sigs) != 1 {
			return nil, reject(r.Type, ErrInvalid, "an approval carries exactly one signature")
		}
		inner, err := decodeBodyChecked(a.Of, a.Proposal, canonical)
		if err != nil {
			return nil, err
		}
		if !multiSigned(inner) {
			return nil, reject(r.Type, ErrInvalid, "%s records need no approval", a.Of)
		}
	}
	if r.Type == TypeCharter {
		c := body.(*Charter)
		if c.Version == 1 && r.Network != GenesisID(r.Body) {
			return nil, reject(r.Type, ErrWrongNetwork, "genesis charter does not hash to its network ID")
		}
	}
	return body, nil
}

// checkEnvelope checks what the record says around its body: a known
// version and type, and signatures in canonical order from distinct keys.
func (r *Record) checkEnvelope() error {
	if r.Version != FormatVersion {
		return reject(r.Type, ErrUnknownVersion, "version %d", r.Version)
	}
	if _, ok := typeNames[r.Type]; !ok {
		return reject(r.Type, ErrUnknownType, "")
	}
	if len(r.Sigs) == 0 {
		return reject(r.Type, ErrBadSignature, "record carries no signature")
	}
	for i := 1; i < len(r.Sigs); i++ {
		if bytes.Compare(r.Sigs[i-1].Key[:], r.Sigs[i].Key[:]) >= 0 {
			return reject(r.Type, ErrMalformed, "signatures not in canonical order or signer repeated")
		}
	}
	return nil
}

// verifySigs checks every signature on r, whose body checkUnsigned
// returned.
func (r *Record) verifySigs(body Body) error {
	domain, msg := r.Type.domain(), signedMessage(r.Network, r.Body)
	if a, ok := body.(*Approval); ok {
		domain, msg = a.Of.domain(), signedMessage(r.Network, a.Proposal)
	}
	for _, s := range r.Sigs {
		if err := CheckPublicKey(s.Key); err != nil {
			return reject(r.Type, ErrBadSignature, "signer: %v", err)
		}
		// The key is checked just above, with the error that names why.
		if !verifyChecked(s.Key, domain, msg, s.Sig) {
			return reject(r.Type, ErrBadSignature, "signer %s", Fingerprint(s.Key))
		}
	}
	return nil
}

// DecodeBody decodes and field-checks the record's body.
func (r *Record) DecodeBody() (Body, error) { return r.decodeBodyWith(true) }

func (r *Record) decodeBodyWith(canonical bool) (Body, error) {
	if r.verified != (Hash{}) && r.verified == r.Hash() {
		if r.body != nil {
			return r.body, nil // decoded and checked when it was opened
		}
		// A record the state holds without its decoded body: its bytes
		// were checked to be canonical when it was verified.
		canonical = false
	}
	return decodeBodyChecked(r.Type, r.Body, canonical)
}

func decodeBody(t RecordType, data []byte) (Body, error) {
	return decodeBodyChecked(t, data, true)
}

// decodeBodyChecked is decodeBody, without the canonical check if
// canonical is false (decodeUnverified).
func decodeBodyChecked(t RecordType, data []byte, canonical bool) (Body, error) {
	var b Body
	switch t {
	case TypeCharter:
		b = new(Charter)
	case TypeMembership:
		b = new(Membership)
	case TypeReader:
		b = new(Reader)
	case TypeEntry:
		b = new(Entry)
	case TypeRevocation:
		b = new(Revocation)
	case TypeEpoch:
		b = new(Epoch)
	case TypeApproval:
		b = new(Approval)
	case TypeManifest:
		b = new(Manifest)
	case TypeEpochPage:
		b = new(EpochPage)
	case TypeHeartbeat:
		b = new(Heartbeat)
	case TypeEvidence:
		b = new(Evidence)
	default:
		return nil, reject(t, ErrUnknownType, "")
	}
	if err := unmarshalChecked(data, b, canonical); err != nil {
		return nil, &RejectError{Type: t, Reason: unwrapSentinel(err), Detail: err.Error()}
	}
	if pg, ok := b.(*EpochPage); ok {
		pg.aliasPackages(data)
	}
	if err := b.check(); err != nil {
		return nil, &RejectError{Type: t, Reason: ErrInvalid, Detail: err.Error()}
	}
	return b, nil
}

// multiSigned reports whether a body type takes effect through steward
// approvals (and so may be approved piecemeal).
func multiSigned(b Body) bool {
	switch b.(type) {
	case *Charter, *Membership, *Epoch:
		return true
	case *Revocation:
		return true
	}
	return false
}

func unwrapSentinel(err error) error {
	for _, s := range []error{ErrTooLarge, ErrNonCanonical, ErrMalformed} {
		if errors.Is(err, s) {
			return s
		}
	}
	return ErrMalformed
}

// GenesisID is the network ID a genesis charter body defines.
func GenesisID(body []byte) NetworkID {
	return NetworkID(domainHash("ceiba network v1", body))
}
