package directory

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/chacha20poly1305"
)

// ReadKey is one epoch's symmetric key: every record travels sealed under it.
type ReadKey [chacha20poly1305.KeySize]byte

// NewReadKey draws a fresh random read key.
func NewReadKey() ReadKey {
	var k ReadKey
	rand.Read(k[:])
	return k
}

// Keyring holds the read keys a node has received, by epoch number. A node
// keeps old keys so it can still open records sealed before a rotation.
type Keyring map[uint64]ReadKey

// Current returns the highest epoch and its key.
func (kr Keyring) Current() (uint64, ReadKey, bool) {
	if len(kr) == 0 {
		return 0, ReadKey{}, false
	}
	n := slices.Max(slicesKeys(kr))
	return n, kr[n], true
}

func slicesKeys(kr Keyring) []uint64 {
	ks := make([]uint64, 0, len(kr))
	for k := range kr {
		ks = append(ks, k)
	}
	return ks
}

// Sealed records start with a fixed header that is authenticated but not
// encrypted: all a watcher of the wire or a keyless peer can see.
const (
	// Version 2 seals under a subkey of the read key (sealSubkey), not
	// the read key itself.
	sealVersion = 2
	// KeyTagLen is the length of the key tag: 128 bits, so two keys
	// (of one network or of any two) never share a tag by accident, and
	// a peer without a key cannot make up a tag that names one.
	KeyTagLen = 16
	headerLen = 1 + KeyTagLen + chacha20poly1305.NonceSizeX
	// MaxSealedBytes bounds what Open will look at.
	MaxSealedBytes = headerLen + (MaxRecordBytes/largeBucket+1)*largeBucket + chacha20poly1305.Overhead
)

// SealHeaderLen is the length of a sealed record's public header; the
// AEAD adds 16 bytes after the padded record.
const SealHeaderLen = headerLen

// Size buckets. A record and its end marker are padded to the smallest
// bucket that holds them: a power of two from smallBucket up to
// largeBucket·4, then a multiple of largeBucket. Revocations, approvals,
// reader grants and most entries all seal to the first two buckets, so a
// watcher of the wire cannot tell a revocation (or an epoch change) from
// an entry by its length; the largest records (max_record_bytes exactly)
// cost at most a quarter more rather than double.
const (
	smallBucket = 1 << 10
	largeBucket = 16 << 10
)

// PaddedSize is the size bucket a record of n encoded bytes is sealed in
// (PROTOCOL.md §5): the length of its padded plaintext.
func PaddedSize(n int) int {
	n++ // the 0x80 end marker
	if n <= 4*largeBucket {
		b := smallBucket
		for b < n {
			b <<= 1
		}
		return b
	}
	return (n + largeBucket - 1) / largeBucket * largeBucket
}

// isBucket reports whether n is a size PaddedSize produces.
func isBucket(n int) bool {
	if n <= 4*largeBucket {
		return n >= smallBucket && n&(n-1) == 0
	}
	return n%largeBucket == 0
}

// KeyTag names the read key a record is sealed under: the first
// KeyTagLen bytes of the key's tag subkey (PROTOCOL.md §5). It is all the
// header says besides the seal version, and it changes with every key:
// a watcher sees neither which network a record belongs to across
// rotations nor how many rotations there were, and a device that lost
// the key at a revocation cannot recognize records sealed after it.
type KeyTag [KeyTagLen]byte

// String is the tag in hex, for logs.
func (t KeyTag) String() string { return hex.EncodeToString(t[:]) }

// Tag is the key's tag.
func (k ReadKey) Tag() KeyTag { return k.derived().tag }

// derivedKeys are the subkeys of a read key used for every record: a node
// computes the tag of each of its keys and the seal subkey for every
// record it opens or seals, and HKDF costs more than the decryption of a
// small record. They are remembered, like the key itself, for the
// process's life.
type derivedKeys struct {
	tag   KeyTag
	seal  [32]byte
	blind [32]byte
}

func (k ReadKey) derived() *derivedKeys {
	if d, ok := keyDerivations.Load(k); ok {
		return d.(*derivedKeys)
	}
	tag := subkey(k, tagLabel)
	d := &derivedKeys{tag: KeyTag(tag[:KeyTagLen]), seal: subkey(k, sealLabel), blind: subkey(k, blindLabel)}
	if keyDerivationCount.Add(1) > maxKeyDerivations {
		// Keys are few (one per epoch per network), except in a
		// process that makes up keys; start over rather than grow.
		keyDerivations.Clear()
		keyDerivationCount.Store(1)
	}
	keyDerivations.Store(k, d)
	return d
}

var (
	keyDerivations     sync.Map // ReadKey → *derivedKeys
	keyDerivationCount atomic.Int64
)

const maxKeyDerivations = 4096

// ByTag finds the key whose tag is t, and its epoch. It looks from the
// newest epoch down: nearly all traffic is sealed under the current key.
func (kr Keyring) ByTag(t KeyTag) (uint64, ReadKey, bool) {
	epochs := slicesKeys(kr)
	slices.Sort(epochs)
	for i := len(epochs) - 1; i >= 0; i-- {
		if k := kr[epochs[i]]; k.Tag() == t {
			return epochs[i], k, true
		}
	}
	return 0, ReadKey{}, false
}

// SealedTag reads the key tag from a sealed record's header.
func SealedTag(sealed []byte) (KeyTag, bool) {
	if len(sealed) < headerLen || sealed[0] != sealVersion {
		return KeyTag{}, false
	}
	return KeyTag(sealed[1 : 1+KeyTagLen]), true
}

// SealedEpoch says which epoch of keys a sealed record is sealed under,
// without opening it. The header carries no epoch number: only a holder
// of the key can tell.
func SealedEpoch(sealed []byte, keys Keyring) (uint64, bool) {
	t, ok := SealedTag(sealed)
	if !ok {
		return 0, false
	}
	e, _, ok := keys.ByTag(t)
	return e, ok
}

// Seal encrypts a signed record under a read key, with the header as
// additional data so it cannot be moved to another key.
func Seal(r *Record, key ReadKey) []byte { return sealBytes(r.Encode(), key) }

// sealBytes seals a record's encoding.
func sealBytes(plain []byte, key ReadKey) []byte {
	padded := make([]byte, len(plain)+1, PaddedSize(len(plain)))
	copy(padded, plain)
	padded[len(plain)] = 0x80
	padded = padded[:cap(padded)]

	out := make([]byte, headerLen, headerLen+len(padded)+chacha20poly1305.Overhead)
	out[0] = sealVersion
	d := key.derived()
	copy(out[1:], d.tag[:])
	rand.Read(out[1+KeyTagLen : headerLen])
	aead, err := chacha20poly1305.NewX(d.seal[:])
	if err != nil {
		panic(err) // the key has the right size by type
	}
	return aead.Seal(out, out[1+KeyTagLen:headerLen], padded, out[:headerLen])
}

// SealsAs reports whether sealed, which the caller opened to r, is what
// Seal(r, key) makes but for its random nonce: sealed under key and padded
// to r's own size bucket, no larger. A node that took r from sealed may
// then store and serve those bytes as its own sealing of r, instead of
// encoding and encrypting a copy of every large record it takes in (most
// of a rotation page's cost on a receiving node). A sealing padded to a
// larger bucket than r needs opens just as well, but is not kept: what a
// node serves is padded as its own seal would be.
func SealsAs(sealed []byte, r *Record, key ReadKey) bool {
	if len(sealed) < headerLen || sealed[0] != sealVersion || KeyTag(sealed[1:1+KeyTagLen]) != key.Tag() {
		return false
	}
	_, size := r.hashAndSize()
	return len(sealed) == headerLen+PaddedSize(size)+chacha20poly1305.Overhead
}

// The read key is never used directly: each use gets its own subkey, so
// that the DHT keys (HMAC outputs anyone can see) and the AEAD never share
// a key, and a flaw found in one use says nothing about the other.
const (
	sealLabel  = "ceiba read key v1: seal"
	blindLabel = "ceiba read key v1: dht slot"
	tagLabel   = "ceiba/v2/key-tag"
	// rendezvousLabel keys the DHT rendezvous (RendezvousKey).
	rendezvousLabel = "ceiba/v2/rendezvous"
	// topicLabel, followed by the topic's kind, names the epoch's
	// GossipSub topics (TopicID).
	topicLabel = "ceiba/v2/topic "
)

// subkey derives the subkey of the read key for one use, with HKDF-SHA256.
func subkey(key ReadKey, label string) [32]byte {
	b, err := hkdf.Key(sha256.New, key[:], nil, label, 32)
	if err != nil {
		panic(err) // 32 bytes is far below HKDF-SHA256's limit
	}
	return [32]byte(b)
}

// Open decrypts a sealed record with the matching key from keys, decodes
// it and verifies every signature on it. It checks nothing that needs the
// directory state; State.Apply does that. The error is a *RejectError whose
// Reason says exactly what failed.
func Open(sealed []byte, net NetworkID, keys Keyring) (*Record, error) {
	u, err := OpenUnverified(sealed, net, keys)
	if err != nil {
		return nil, err
	}
	return u.Verify()
}

// Vouched is what a node's own record of its store (node/checkpoint.go)
// says was checked of a stored record before.
type Vouched uint8

const (
	// VouchedNothing: the record is checked in full.
	VouchedNothing Vouched = iota
	// VouchedSignatures: its signatures and its canonical encoding were
	// checked; its fields are checked again.
	VouchedSignatures
	// VouchedAll: VouchedSignatures, and its fields were checked by a
	// build with this build's RecordRules. An entry's body is then not
	// decoded at all: the record carries the few fields State.Apply
	// reads, and its body is decoded when something reads it.
	VouchedAll
)

// OpenVerified is Open for a node re-reading its own store: what vouch
// reports was checked of a record before is not checked again. vouch must
// report only what was checked already (by this node, recorded where no
// one else can forge the record of it: node/checkpoint.go). The hash
// covers the record's every byte, signatures included, so a record that
// differs in any way is checked in full; everything else Open checks, and
// everything State.Apply checks, is checked as always. vouch is called
// once, with the hash of the record's bytes, for every sealing that
// decrypts; for a record it returns, that hash is the record's
// (node/load.go uses it instead of re-encoding the record to hash it).
//
// OpenVerified decrypts in place: once it has tried the key sealed's tag
// names, sealed holds the plaintext, or zeros if it did not decrypt, and
// the caller must not use it again. (The record it returns shares no
// memory with it.) A node re-reading its store has no use for the sealed
// bytes once opened, and decrypting into fresh memory made 90 MB of
// garbage for every start at 100,000 entries.
func OpenVerified(sealed []byte, net NetworkID, keys Keyring, vouch func(Hash) Vouched) (*Record, error) {
	s, err := unseal(sealed, keys, true)
	if err != nil {
		return nil, err
	}
	// The hash of the bytes, before decoding them: a record this node
	// checked before need not be checked to be canonical again either
	// (the hash names these very bytes, which were canonical then). That
	// re-encoding was half of what opening a stored record cost.
	h := sha256.Sum256(s.data)
	v := VouchedNothing
	if vouch != nil {
		v = vouch(h)
	}
	u, err := s.decode(net, h, v == VouchedNothing, v == VouchedAll)
	if err != nil {
		return nil, err
	}
	if v != VouchedNothing {
		return u.vouched(), nil
	}
	return u.Verify()
}

// OpenUnverified is Open without the signature checks: the caller must
// call Verify before it trusts, applies or passes on the record. It lets a
// node refuse a record whose claimed author is over its update rate for
// the price of a decryption, not a signature check per signer.
func OpenUnverified(sealed []byte, net NetworkID, keys Keyring) (*Unverified, error) {
	s, err := Unseal(sealed, keys)
	if err != nil {
		return nil, err
	}
	return s.Decode(net)
}

// Unsealed is a record decrypted but not yet decoded: OpenUnverified in
// two steps, so that a node can read what the record claims (Claim) and
// refuse it before decoding and checking every field of a large body.
type Unsealed struct {
	data  []byte
	epoch uint64
}

// Unseal checks a sealing's header and padding and decrypts it.
func Unseal(sealed []byte, keys Keyring) (*Unsealed, error) { return unseal(sealed, keys, false) }

// unseal is Unseal that, inPlace, decrypts into sealed's own memory.
func unseal(sealed []byte, keys Keyring, inPlace bool) (*Unsealed, error) {
	if len(sealed) > MaxSealedBytes {
		return nil, &RejectError{Reason: ErrTooLarge, Detail: fmt.Sprintf("%d bytes sealed", len(sealed))}
	}
	if len(sealed) < headerLen+chacha20poly1305.Overhead {
		return nil, &RejectError{Reason: ErrMalformed, Detail: "shorter than a sealed header"}
	}
	if sealed[0] != sealVersion {
		return nil, &RejectError{Reason: ErrUnknownVersion, Detail: fmt.Sprintf("seal version %d", sealed[0])}
	}
	if n := len(sealed) - headerLen - chacha20poly1305.Overhead; !isBucket(n) {
		return nil, &RejectError{Reason: ErrMalformed, Detail: fmt.Sprintf("padded to %d bytes, not a size bucket", n)}
	}
	tag := KeyTag(sealed[1 : 1+KeyTagLen])
	epoch, key, ok := keys.ByTag(tag)
	if !ok {
		// Sealed under a key this node does not hold: a newer epoch's,
		// or another network's (which the tag does not tell apart).
		return nil, &RejectError{Reason: ErrNoKey, Detail: "key tag " + tag.String()}
	}
	aead, _ := chacha20poly1305.NewX(key.derived().seal[:])
	var dst []byte
	if inPlace {
		dst = sealed[headerLen:headerLen] // the ciphertext's own start: an exact overlap
	}
	padded, err := aead.Open(dst, sealed[1+KeyTagLen:headerLen], sealed[headerLen:], sealed[:headerLen])
	if err != nil {
		return nil, &RejectError{Reason: ErrDecrypt, Detail: fmt.Sprintf("epoch %d", epoch)}
	}
	end := len(padded) - 1
	for end >= 0 && padded[end] == 0 {
		end--
	}
	if end < 0 || padded[end] != 0x80 {
		return nil, &RejectError{Reason: ErrMalformed, Detail: "bad padding"}
	}
	return &Unsealed{data: padded[:end], epoch: epoch}, nil
}

// Decode parses the record and checks everything but its signatures.
func (s *Unsealed) Decode(net NetworkID) (*Unverified, error) {
	return s.decode(net, sha256.Sum256(s.data), true, false)
}

func (s *Unsealed) decode(net NetworkID, h Hash, canonical, factsOnly bool) (*Unverified, error) {
	u, err := decodeStored(s.data, h, canonical, factsOnly)
	if err != nil {
		return nil, err
	}
	if u.r.Network != net {
		return nil, reject(u.r.Type, ErrWrongNetwork, "record names network %s", u.r.Network.String()[:12])
	}
	u.r.openedUnder, u.r.opened = s.epoch, true
	return u, nil
}

// Claim is what a record says of itself before it is decoded: its type,
// its signers' keys and, for an entry, the slot and sequence number.
// Nothing in it is checked; anyone holding the read key can seal any
// claim. It is only for refusing cheaply what would be refused anyway if
// the claim were true, and costs the claimed author nothing if it is not.
type Claim struct {
	Type    RecordType
	Signers []PublicKey
	// EntryID and Seq are the entry's, when Type is TypeEntry.
	EntryID string
	Seq     uint64
}

// claimRecord and claimEntry are the fields a Claim reads; the decoder
// skips the rest without decoding it.
type claimRecord struct {
	Type RecordType  `cbor:"2,keyasint"`
	Body []byte      `cbor:"4,keyasint"`
	Sigs []Signature `cbor:"5,keyasint"`
}

type claimEntry struct {
	ID  string `cbor:"1,keyasint"`
	Seq uint64 `cbor:"2,keyasint"`
}

// Claim reads the record's claim: a few fields, not the body's text, no
// canonical-encoding or field checks (Decode makes those). On a 16 KB
// entry it costs a small part of Decode. An error means the record is not
// even well-formed CBOR of the right shape: Decode would refuse it too.
func (s *Unsealed) Claim() (Claim, error) {
	var r claimRecord
	if err := claimMode.Unmarshal(s.data, &r); err != nil {
		return Claim{}, &RejectError{Reason: ErrMalformed, Detail: err.Error()}
	}
	c := Claim{Type: r.Type, Signers: make([]PublicKey, len(r.Sigs))}
	for i, sig := range r.Sigs {
		c.Signers[i] = sig.Key
	}
	if r.Type == TypeEntry {
		var e claimEntry
		if err := claimMode.Unmarshal(r.Body, &e); err != nil {
			return Claim{}, reject(r.Type, ErrMalformed, "entry body: %v", err)
		}
		c.EntryID, c.Seq = e.ID, e.Seq
	}
	return c, nil
}

// The key-package suite: hybrid post-quantum KEM, HKDF-SHA256, ChaCha20-Poly1305.
var (
	pkgKDF  = hpke.HKDFSHA256()
	pkgAEAD = hpke.ChaCha20Poly1305()
)

func packageInfo(net NetworkID, epoch uint64, rotation [16]byte, recipient PublicKey) []byte {
	info := []byte("ceiba epoch key v2\x00")
	info = append(info, net[:]...)
	info = binary.BigEndian.AppendUint64(info, epoch)
	info = append(info, rotation[:]...)
	return append(info, recipient[:]...)
}

// EpochKeyCommitment is the hash an epoch record carries of its read key,
// bound to the network, the epoch number and the rotation ID.
func EpochKeyCommitment(net NetworkID, number uint64, rotation [16]byte, key ReadKey) Hash {
	return domainHash("ceiba/v2/epoch-key", net[:], binary.BigEndian.AppendUint64(nil, number), rotation[:], key[:])
}

// VerifyEpochKey reports whether key is the read key epoch e commits to:
// how a node checks keys it was handed (by an invite's keyring transfer)
// rather than opened from its own package.
func VerifyEpochKey(net NetworkID, e *Epoch, key ReadKey) bool {
	c := EpochKeyCommitment(net, e.Number, e.Rotation, key)
	return hmac.Equal(c[:], e.KeyCommit[:])
}

// Recipient is a key that should receive read keys: a steward, a member
// organization or a reader.
type Recipient struct {
	Key PublicKey
	KEM []byte
	// KEMSig is Key's signature on KEM, where the recipient is being
	// admitted; sealing needs only Key and KEM.
	KEMSig []byte
}

// BlindSlot maps a slot to the DHT key it is stored under in one epoch.
// Without the read key a DHT node cannot tell which record a key holds, nor
// link the keys of one organization's entries.
func BlindSlot(key ReadKey, slot SlotID) string {
	m := hmac.New(sha256.New, key.derived().blind[:])
	m.Write([]byte("ceiba dht slot v2\x00"))
	m.Write(slot[:])
	return "/ceiba/" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(m.Sum(nil))
}

// TopicID names one of the epoch's GossipSub topics (kind "governance" or
// "entries"): the first 16 bytes of HKDF-SHA256(read key, "ceiba/v2/topic
// " + kind). Derived from the key, not the network, so the topic changes
// with every rotation and a device the rotation revoked cannot compute the
// new name, or subscribe to it, even while it stays connected.
func TopicID(key ReadKey, kind string) [16]byte {
	sk := subkey(key, topicLabel+kind)
	return [16]byte(sk[:16])
}

// RendezvousKey is the value nodes holding one read key advertise as
// providers of, so they find each other in a shared DHT. It changes daily
// and with every key: only holders of the key can compute it, so a device
// that lost the key at a revocation cannot find the nodes that rotated.
func RendezvousKey(key ReadKey, day time.Time) []byte {
	rk := subkey(key, rendezvousLabel)
	m := hmac.New(sha256.New, rk[:])
	m.Write([]byte("ceiba rendezvous v2\x00"))
	m.Write([]byte(day.UTC().Format(time.DateOnly)))
	return m.Sum(nil)
}

func compareKeys(a, b PublicKey) int {
	switch {
	case keyLess(a, b):
		return -1
	case a == b:
		return 0
	}
	return 1
}

// OpenInterim opens a record that a build of protocol version 2 stored
// before the record envelope said version 2: everything else in its format
// is version 2's, but its envelope says 1. The version is not under the
// signatures (which cover the network and the body), so the same record
// with version 2 is the record its signers made, checked here in full as
// Open checks any record; only its hash, which covers the version, is
// new. It is for a node re-reading its own store (PROTOCOL.md §10,
// "Records stored with envelope version 1"), never for what peers send: a
// peer still on such a build is refused until it upgrades. A sealing that
// is not such a record is refused with the reason Open gives.
func OpenInterim(sealed []byte, net NetworkID, keys Keyring) (*Record, error) {
	s, err := Unseal(sealed, keys)
	if err != nil {
		return nil, err
	}
	var r Record
	if err := unmarshalChecked(s.data, &r, true); err != nil {
		return nil, &RejectError{Reason: unwrapSentinel(err), Detail: err.Error()}
	}
	if r.Version == 1 {
		// From here on, the version-2 record: Open's own checks.
		r.Version = FormatVersion
		s = &Unsealed{data: r.Encode(), epoch: s.epoch}
	}
	u, err := s.Decode(net)
	if err != nil {
		return nil, err
	}
	return u.Verify()
}
