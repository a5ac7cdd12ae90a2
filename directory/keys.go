package directory

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hpke"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode"

	"filippo.io/edwards25519"
)

// PublicKey is an Ed25519 verification key: the identity of a steward, a
// member organization or a reader everywhere in the directory.
type PublicKey [ed25519.PublicKeySize]byte

// KEMPublicKeySize is the size of an ML-KEM-768 + X25519 encapsulation key.
const KEMPublicKeySize = 1184 + 32

// kem is the hybrid KEM every key package uses: ML-KEM-768 keeps the read key
// secret against an adversary recording traffic today for a quantum computer
// tomorrow; X25519 keeps it secret if ML-KEM turns out to be weak.
var kem = hpke.MLKEM768X25519()

func (k PublicKey) String() string { return Fingerprint(k) }

// Hex is the full key, for places that must be exact (logs, JSON).
func (k PublicKey) Hex() string { return hex.EncodeToString(k[:]) }

// ParsePublicKeyHex parses the 64-character hex form of a public key.
func ParsePublicKeyHex(s string) (PublicKey, error) {
	var k PublicKey
	b, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(b) != len(k) {
		return k, fmt.Errorf("%w: public key must be %d hex characters", ErrInvalid, 2*len(k))
	}
	copy(k[:], b)
	if err := CheckPublicKey(k); err != nil {
		return PublicKey{}, err
	}
	return k, nil
}

// ErrWeakKey is the reason a public key is refused wherever it enters.
var ErrWeakKey = errors.New("public key is not a canonical point of large order")

// CheckPublicKey refuses keys that no honest key generation produces and
// that let anyone sign as them. Under a small-order key (the neutral
// element 01 00…00, among eight) the fixed signature R = 01 00…00, S = 0
// verifies for every message, so a "revocation" or "entry" under it costs
// nothing to forge. Non-canonical encodings (a y coordinate at or above
// 2^255-19, or x = 0 with its sign bit set) name a point that also has a
// canonical encoding: two keys, one point, which lets a key hide from the
// revocation and equality checks that compare bytes.
func CheckPublicKey(k PublicKey) error {
	if goodKeys.has(k) {
		return nil
	}
	if err := checkPoint(k); err != nil {
		return err
	}
	goodKeys.add(k)
	return nil
}

func checkPoint(k PublicKey) error {
	p, err := new(edwards25519.Point).SetBytes(k[:])
	if err != nil {
		return fmt.Errorf("%w: %s is not a point on the curve", ErrWeakKey, k.Hex())
	}
	if !bytes.Equal(p.Bytes(), k[:]) {
		return fmt.Errorf("%w: %s is a non-canonical encoding", ErrWeakKey, k.Hex())
	}
	if new(edwards25519.Point).MultByCofactor(p).Equal(edwards25519.NewIdentityPoint()) == 1 {
		return fmt.Errorf("%w: %s has small order", ErrWeakKey, k.Hex())
	}
	return nil
}

// goodKeys remembers keys CheckPublicKey accepted. The check decompresses
// the point, a field square root of about 10 µs, and a node checks the keys
// of the same few hundred signers at every record it verifies: that was
// about a fifth of a gossiped record's cost. The answer depends on the key's
// bytes alone, so it can be remembered; only accepted keys are, and the set
// is emptied when it is full, so keys an attacker makes up cost at most
// its max entries of memory (about 1 MiB), never a wrong answer. Flushing
// it over and over only brings honest records back to one check each.
var goodKeys = keySet{max: 16 << 10, m: map[PublicKey]struct{}{}}

type keySet struct {
	mu  sync.RWMutex
	max int
	m   map[PublicKey]struct{}
}

func (s *keySet) has(k PublicKey) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	_, ok := s.m[k]
	return ok
}

func (s *keySet) add(k PublicKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= s.max {
		clear(s.m)
	}
	s.m[k] = struct{}{}
}

// Identity holds one person's or organization's secret keys: an Ed25519 key
// that signs records and an HPKE key that receives read-key packages.
type Identity struct {
	sign ed25519.PrivateKey
	kem  hpke.PrivateKey
}

// NewIdentity generates fresh keys.
func NewIdentity() (*Identity, error) {
	_, sk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	kk, err := kem.GenerateKey()
	if err != nil {
		return nil, err
	}
	return &Identity{sign: sk, kem: kk}, nil
}

// identityFromSecrets rebuilds an identity from its serialized secrets.
func identityFromSecrets(seed, kemSecret []byte) (*Identity, error) {
	if len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: signing seed has %d bytes", ErrCorruptKeystore, len(seed))
	}
	kk, err := kem.NewPrivateKey(kemSecret)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorruptKeystore, err)
	}
	return &Identity{sign: ed25519.NewKeyFromSeed(seed), kem: kk}, nil
}

// Public returns the identity's signing public key.
func (id *Identity) Public() PublicKey {
	var k PublicKey
	copy(k[:], id.sign.Public().(ed25519.PublicKey))
	return k
}

// KEMPublic returns the encapsulation key that key packages are sealed to.
func (id *Identity) KEMPublic() []byte { return id.kem.PublicKey().Bytes() }

// Fingerprint is the human-checkable form of the identity's public key.
func (id *Identity) Fingerprint() string { return Fingerprint(id.Public()) }

func (id *Identity) signDomain(domain string, msg []byte) []byte {
	return ed25519.Sign(id.sign, signingInput(domain, msg))
}

// LocalMACKey is a key for authenticating, or sealing with an AEAD, what
// this identity's node keeps for itself on its own disk (node/checkpoint.go,
// node/indexsnap.go): only the holder of the identity's secret can derive
// it, so a file changed by anyone else does not pass, and a sealed one
// shows nothing without the passphrase. purpose separates the uses.
func (id *Identity) LocalMACKey(purpose string) [32]byte {
	return domainHash("ceiba/v2/local-mac", []byte(purpose), id.sign.Seed())
}

func (id *Identity) secrets() (seed, kemSecret []byte) {
	kb, err := id.kem.Bytes()
	if err != nil {
		panic(err) // a generated or parsed hybrid key always serializes
	}
	return id.sign.Seed(), kb
}

// signingInput prefixes every signed message with its purpose, so a
// signature made for one record type can never be replayed as another.
func signingInput(domain string, msg []byte) []byte {
	b := make([]byte, 0, len(domain)+1+len(msg))
	b = append(b, domain...)
	b = append(b, 0)
	return append(b, msg...)
}

// verifyDomain refuses weak keys itself, so no signature check anywhere
// (records, KEM bindings, invite transcripts) can be met by a small-order
// key's universal signature.
func verifyDomain(k PublicKey, domain string, msg, sig []byte) bool {
	return CheckPublicKey(k) == nil && verifyChecked(k, domain, msg, sig)
}

// verifyChecked is verifyDomain for a key CheckPublicKey has accepted.
func verifyChecked(k PublicKey, domain string, msg, sig []byte) bool {
	return len(sig) == ed25519.SignatureSize && ed25519.Verify(k[:], signingInput(domain, msg), sig)
}

// Fingerprints are 25 base32 characters in five groups of five; the last
// character is a Luhn mod 32 check over the others, so a mistyped or
// misread character is caught before any lookup.
var fpAlphabet = "abcdefghijklmnopqrstuvwxyz234567"

const fpDataChars = 24 // 120 bits of SHA-256(public key)

// Fingerprint returns the grouped, checksummed fingerprint of a public key.
func Fingerprint(k PublicKey) string {
	h := sha256.Sum256(append([]byte("ceiba fingerprint v1\x00"), k[:]...))
	data := base32.NewEncoding(fpAlphabet).WithPadding(base32.NoPadding).EncodeToString(h[:])[:fpDataChars]
	full := data + string(fpAlphabet[luhn32(data)])
	var sb strings.Builder
	for i := 0; i < len(full); i += 5 {
		if i > 0 {
			sb.WriteByte('-')
		}
		sb.WriteString(full[i : i+5])
	}
	return sb.String()
}

// NormalizeFingerprint accepts a fingerprint typed by a person (any case,
// white space or dashes anywhere), checks its check character and returns the
// canonical grouped form.
func NormalizeFingerprint(s string) (string, error) {
	var clean strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case unicode.IsSpace(r) || unicode.Is(unicode.Pd, r):
			// Pasted fingerprints arrive broken over lines, with no-break
			// spaces from chat apps or en dashes from word processors.
		case strings.ContainsRune(fpAlphabet, r):
			clean.WriteRune(r)
		default:
			return "", fmt.Errorf("%w: character %q is not used in fingerprints", ErrBadFingerprint, r)
		}
	}
	c := clean.String()
	if len(c) != fpDataChars+1 {
		return "", fmt.Errorf("%w: %d characters, want %d", ErrBadFingerprint, len(c), fpDataChars+1)
	}
	if fpAlphabet[luhn32(c[:fpDataChars])] != c[fpDataChars] {
		return "", ErrBadFingerprint
	}
	var sb strings.Builder
	for i := 0; i < len(c); i += 5 {
		if i > 0 {
			sb.WriteByte('-')
		}
		sb.WriteString(c[i : i+5])
	}
	return sb.String(), nil
}

// luhn32 is the Luhn mod N algorithm over the fingerprint alphabet: it
// catches every single-character error and most adjacent transpositions.
func luhn32(s string) int {
	const n = 32
	factor, sum := 2, 0
	for i := len(s) - 1; i >= 0; i-- {
		addend := factor * strings.IndexByte(fpAlphabet, s[i])
		factor = 3 - factor
		sum += addend/n + addend%n
	}
	return (n - sum%n) % n
}

// kemBindingDomain separates a key's signature on its own KEM key from
// every record signature.
const kemBindingDomain = "ceiba/v2/kem-binding"

func kemBindingMessage(k PublicKey, kemKey []byte) []byte {
	return append(k[:len(k):len(k)], kemKey...)
}

// KEMBinding is the identity's signature on its own encapsulation key. Every
// admission carries it, so nobody can pair someone else's signing key with
// an encapsulation key of their own and have read keys sealed to it.
func (id *Identity) KEMBinding() []byte {
	return id.signDomain(kemBindingDomain, kemBindingMessage(id.Public(), id.KEMPublic()))
}

// VerifyKEMBinding reports whether sig is k's signature on kemKey.
func VerifyKEMBinding(k PublicKey, kemKey, sig []byte) bool {
	return verifyDomain(k, kemBindingDomain, kemBindingMessage(k, kemKey), sig)
}
