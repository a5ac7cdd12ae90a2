package directory

import (
	"crypto/hpke"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
)

// InviteTranscript is what a person redeeming an invite signs with the key
// it asks to have admitted. It ties that key, and the KEM key read keys
// will be sealed to, to one token and one libp2p connection: a code
// copied off a screen and replayed over another connection, or a redeemer
// presenting someone else's public key, gets nowhere.
type InviteTranscript struct {
	// TokenHash is SHA-256 of the code's token: the signature says which
	// invite it redeems without carrying the secret itself.
	TokenHash [32]byte
	// Inviter and Redeemer are the binary libp2p peer IDs at the two ends
	// of the connection the redemption runs over.
	Inviter  []byte
	Redeemer []byte
	Key      PublicKey
	KEM      []byte
}

// inviteTranscriptDomain separates a transcript signature from every
// record signature and from the KEM binding.
const inviteTranscriptDomain = "ceiba/v2/invite-transcript"

// InviteTokenHash is the TokenHash of a token.
func InviteTokenHash(token []byte) [32]byte { return sha256.Sum256(token) }

// message encodes the transcript unambiguously: every variable-length
// field carries its length, so no two transcripts share an encoding.
func (t InviteTranscript) message() []byte {
	b := make([]byte, 0, 32+2+len(t.Inviter)+2+len(t.Redeemer)+len(t.Key)+2+len(t.KEM))
	b = append(b, t.TokenHash[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(t.Inviter)))
	b = append(b, t.Inviter...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(t.Redeemer)))
	b = append(b, t.Redeemer...)
	b = append(b, t.Key[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(t.KEM)))
	return append(b, t.KEM...)
}

func (t InviteTranscript) wellFormed() error {
	if len(t.Inviter) == 0 || len(t.Inviter) > 128 || len(t.Redeemer) == 0 || len(t.Redeemer) > 128 {
		return errors.New("transcript peer IDs missing or too long")
	}
	if len(t.KEM) > 0xffff {
		return errors.New("transcript encryption key too long")
	}
	return nil
}

// SignInviteTranscript signs t with id, which must be the key t names.
func SignInviteTranscript(id *Identity, t InviteTranscript) ([]byte, error) {
	if t.Key != id.Public() {
		return nil, errors.New("an invite transcript is signed by the key it names")
	}
	if err := t.wellFormed(); err != nil {
		return nil, err
	}
	return id.signDomain(inviteTranscriptDomain, t.message()), nil
}

// VerifyInviteTranscript reports whether sig is t.Key's signature on t.
// Weak keys fail, as everywhere (verifyDomain).
func VerifyInviteTranscript(t InviteTranscript, sig []byte) bool {
	return t.wellFormed() == nil && verifyDomain(t.Key, inviteTranscriptDomain, t.message(), sig)
}

// InviteWelcome is everything a redeemed invite hands over, and the only
// place the network's identity reaches the redeemer: the code itself says
// nothing about the network.
type InviteWelcome struct {
	Network NetworkID         `cbor:"1,keyasint"`
	Role    string            `cbor:"2,keyasint"`
	Keys    map[uint64][]byte `cbor:"3,keyasint"`
	// Records are encoded records the redeemer applies at once (the
	// genesis charter, the current epoch, its own admission), so its node
	// knows its network before the first sync.
	Records [][]byte `cbor:"4,keyasint,omitempty"`
	// Proposal is the redeemer's admission proposal, when there is one.
	Proposal Hash `cbor:"5,keyasint"`
}

func welcomeInfo(t InviteTranscript) []byte {
	return append([]byte("ceiba invite welcome v1\x00"), t.message()...)
}

// SealInviteWelcome encrypts w to the KEM key of a transcript whose
// signature the caller has verified. The HPKE info is the whole
// transcript, so the welcome opens only for this token, this connection
// and this key.
func SealInviteWelcome(t InviteTranscript, w *InviteWelcome) ([]byte, error) {
	if err := t.wellFormed(); err != nil {
		return nil, err
	}
	pk, err := kem.NewPublicKey(t.KEM)
	if err != nil {
		return nil, fmt.Errorf("%w: redeemer's encryption key: %v", ErrInvalid, err)
	}
	return hpke.Seal(pk, pkgKDF, pkgAEAD, welcomeInfo(t), marshal(w))
}

// OpenInviteWelcome opens a welcome sealed to id for transcript t and
// checks its read keys.
func OpenInviteWelcome(id *Identity, t InviteTranscript, sealed []byte) (*InviteWelcome, Keyring, error) {
	if t.Key != id.Public() {
		return nil, nil, errors.New("the transcript names another key")
	}
	plain, err := hpke.Open(id.kem, pkgKDF, pkgAEAD, welcomeInfo(t), sealed)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: the invite's answer is not sealed to this key and connection", ErrDecrypt)
	}
	var w InviteWelcome
	if err := unmarshalCanonical(plain, &w); err != nil {
		return nil, nil, err
	}
	kr := Keyring{}
	for n, k := range w.Keys {
		if len(k) != len(ReadKey{}) {
			return nil, nil, fmt.Errorf("%w: key for epoch %d has %d bytes", ErrMalformed, n, len(k))
		}
		kr[n] = ReadKey(k)
	}
	return &w, kr, nil
}
