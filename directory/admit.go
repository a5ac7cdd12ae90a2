package directory

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"time"
)

// The proofs of the admission exchange and the sync hello (PROTOCOL.md §7),
// shared by the node and the web app's core. Peer IDs are their binary
// form; moving the bytes is the caller's.

// AdmitNonceSize, AdmitMACSize and AdmitProofSize are the admission
// exchange's field sizes: nonces, network proofs, and key || signature.
const (
	AdmitNonceSize = 16
	AdmitMACSize   = sha256.Size
	AdmitProofSize = 32 + 64
)

// SyncProofKey is the HMAC key of the sync and admission network proofs:
// anyone who holds the network ID (members, and also revoked devices and
// invite holders) has it, so it only keeps strangers out; the signatures
// do the rest.
func SyncProofKey(net NetworkID) []byte {
	k := sha256.Sum256(append([]byte("ceiba sync key v1\x00"), net[:]...))
	return k[:]
}

// SyncProof is the sync session's network proof of role ('I' for the
// initiator, 'R' for the responder) under proofKey (SyncProofKey).
func SyncProof(proofKey []byte, role byte, initiator, responder []byte) []byte {
	m := hmac.New(sha256.New, proofKey)
	m.Write([]byte("ceiba sync proof v1\x00"))
	m.Write([]byte{role})
	m.Write(initiator)
	m.Write([]byte{0})
	m.Write(responder)
	return m.Sum(nil)
}

// SyncHello is the signed part of a sync hello (PROTOCOL.md §7): key,
// time, nonce, signature and the epochs whose keys the initiator holds.
func SyncHello(id *Identity, net NetworkID, initiator, responder []byte, now time.Time, nonce []byte, epochs []uint64) []byte {
	enc := binary.BigEndian.AppendUint16(nil, uint16(len(epochs)))
	for _, e := range epochs {
		enc = binary.BigEndian.AppendUint64(enc, e)
	}
	key := id.Public()
	sig := id.SignTranscript(SyncHelloDomain, SessionTranscript(net, initiator, responder, key, now.Unix(), nonce, enc))
	out := make([]byte, 0, 32+8+len(nonce)+64+len(enc))
	out = append(out, key[:]...)
	out = binary.BigEndian.AppendUint64(out, uint64(now.Unix()))
	out = append(out, nonce...)
	out = append(out, sig...)
	return append(out, enc...)
}

// SessionTranscript is what the sync hello's and the admission proof's
// signatures cover: network, both peer IDs, the signing key, a time, a
// nonce and a purpose-specific tail.
func SessionTranscript(net NetworkID, initiator, responder []byte, key PublicKey, unix int64, nonce, tail []byte) []byte {
	m := make([]byte, 0, 32+2+len(initiator)+2+len(responder)+32+8+len(nonce)+len(tail))
	m = append(m, net[:]...)
	m = binary.BigEndian.AppendUint16(m, uint16(len(initiator)))
	m = append(m, initiator...)
	m = binary.BigEndian.AppendUint16(m, uint16(len(responder)))
	m = append(m, responder...)
	m = append(m, key[:]...)
	m = binary.BigEndian.AppendUint64(m, uint64(unix))
	m = append(m, nonce...)
	return append(m, tail...)
}

// AdmitMAC is side's network proof ('O' for the opener, 'A' for the
// accepter) under proofKey (SyncProofKey).
func AdmitMAC(proofKey []byte, side byte, opener, accepter, nO, nA []byte) []byte {
	m := hmac.New(sha256.New, proofKey)
	m.Write([]byte("ceiba admit v2\x00"))
	m.Write([]byte{side})
	m.Write(binary.BigEndian.AppendUint16(nil, uint16(len(opener))))
	m.Write(opener)
	m.Write(binary.BigEndian.AppendUint16(nil, uint16(len(accepter))))
	m.Write(accepter)
	m.Write(nO)
	m.Write(nA)
	return m.Sum(nil)
}

// admitTranscript is the sync hello's transcript layout with no time (the
// two fresh nonces stand for it) and the side in place of the epochs.
func admitTranscript(net NetworkID, opener, accepter []byte, key PublicKey, side byte, nO, nA []byte) []byte {
	return SessionTranscript(net, opener, accepter, key, 0, slices.Concat(nO, nA), []byte{side})
}

// AdmitProof is side's key and its signature on the admission transcript.
func AdmitProof(id *Identity, net NetworkID, side byte, opener, accepter, nO, nA []byte) []byte {
	key := id.Public()
	sig := id.SignTranscript(AdmitDomain, admitTranscript(net, opener, accepter, key, side, nO, nA))
	return append(key[:], sig...)
}

// CheckAdmitProof returns the key of side's proof and whether its
// signature verifies; whether that key is admitted is the caller's
// judgement (State.AdmittedRole).
func CheckAdmitProof(net NetworkID, proof []byte, side byte, opener, accepter, nO, nA []byte) (PublicKey, bool) {
	var k PublicKey
	if len(proof) != AdmitProofSize {
		return k, false
	}
	copy(k[:], proof[:32])
	return k, VerifyTranscript(k, AdmitDomain, admitTranscript(net, opener, accepter, k, side, nO, nA), proof[32:])
}

// AdmittedRole says what k is in this state: "steward" (of the current
// charter), "member" or "reader", with ok; or "revoked" or "unknown".
func (s *State) AdmittedRole(k PublicKey) (role string, ok bool) {
	if s.IsRevoked(k) {
		return "revoked", false
	}
	if c := s.Charter(); c != nil && slices.Contains(c.StewardKeys(), k) {
		return "steward", true
	}
	if _, ok := s.Member(k); ok {
		return "member", true
	}
	if s.IsReader(k) {
		return "reader", true
	}
	return "unknown", false
}

// SyncDigest is what a sync session compares (PROTOCOL.md §7): a set of
// record hashes sorted ascending, bucketed by first byte.
type SyncDigest struct {
	Hashes  []Hash   // sorted
	Start   [257]int // bucket b is Hashes[Start[b]:Start[b+1]]
	Buckets [256]Hash
	Root    Hash
}

// NewSyncDigest sorts hs (in place) and computes its buckets and root.
func NewSyncDigest(hs []Hash) *SyncDigest {
	d := &SyncDigest{Hashes: hs}
	slices.SortFunc(d.Hashes, func(a, b Hash) int { return bytes.Compare(a[:], b[:]) })
	i := 0
	for b := range 256 {
		d.Start[b] = i
		h := sha256.New()
		h.Write([]byte("ceiba sync bucket v1\x00"))
		for i < len(hs) && int(hs[i][0]) == b {
			h.Write(hs[i][:])
			i++
		}
		if i > d.Start[b] {
			h.Sum(d.Buckets[b][:0])
		}
	}
	d.Start[256] = len(hs)
	root := sha256.New()
	root.Write([]byte("ceiba sync root v1\x00"))
	for b := range 256 {
		root.Write(binary.BigEndian.AppendUint32(nil, uint32(d.Start[b+1]-d.Start[b])))
		root.Write(d.Buckets[b][:])
	}
	root.Sum(d.Root[:0])
	return d
}

// BucketTable is the buckets message: each bucket's count and hash.
func (d *SyncDigest) BucketTable() []byte {
	out := make([]byte, 0, 256*36)
	for b := range 256 {
		out = binary.BigEndian.AppendUint32(out, uint32(d.Start[b+1]-d.Start[b]))
		out = append(out, d.Buckets[b][:]...)
	}
	return out
}
