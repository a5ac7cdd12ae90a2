// Package v1test writes protocol-version-1 records, for tests of the
// upgrade only: version 2 never writes version 1, and nothing outside tests
// imports this package. It signs with a bare Ed25519 key and seals as
// commit a5d5f10 did (see package v1compat for the format).
package v1test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"slices"

	"github.com/fxamacker/cbor/v2"
	"golang.org/x/crypto/chacha20poly1305"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/v1compat"
)

var typeNames = map[uint8]string{1: "charter", 2: "membership", 3: "reader", 4: "entry", 5: "revocation", 6: "epoch", 7: "approval", 8: "manifest"}

// Marshal is version 1's canonical CBOR encoding.
func Marshal(v any) []byte {
	em, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		panic(err)
	}
	b, err := em.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Record builds a version-1 record of type t over body, signed by each key.
func Record(net directory.NetworkID, t uint8, body any, signers ...ed25519.PrivateKey) *v1compat.Record {
	r := &v1compat.Record{Version: 1, Type: t, Network: net, Body: Marshal(body)}
	for _, k := range signers {
		Sign(r, k)
	}
	return r
}

// Approval builds a version-1 approval of a proposal of type t by one key.
func Approval(net directory.NetworkID, t uint8, body any, k ed25519.PrivateKey) *v1compat.Record {
	prop := Marshal(body)
	r := &v1compat.Record{Version: 1, Type: v1compat.TypeApproval, Network: net, Body: Marshal(&v1compat.Approval{Of: t, Proposal: prop})}
	r.Sigs = []v1compat.Signature{{Key: directory.PublicKey(k.Public().(ed25519.PublicKey)), Sig: ed25519.Sign(k, input(t, net, prop))}}
	return r
}

// Sign adds k's version-1 signature to r, in canonical order.
func Sign(r *v1compat.Record, k ed25519.PrivateKey) {
	pub := directory.PublicKey(k.Public().(ed25519.PublicKey))
	r.Sigs = append(r.Sigs, v1compat.Signature{Key: pub, Sig: ed25519.Sign(k, input(r.Type, r.Network, r.Body))})
	slices.SortFunc(r.Sigs, func(a, b v1compat.Signature) int { return bytes.Compare(a.Key[:], b.Key[:]) })
}

func input(t uint8, net directory.NetworkID, body []byte) []byte {
	b := append([]byte("ceiba/v1/"+typeNames[t]), 0)
	b = append(b, net[:]...)
	return append(b, body...)
}

// Seal seals r under the read key of epoch as version 1 did; it returns
// the sealed bytes and the record's hash, the key it is stored under.
func Seal(r *v1compat.Record, epoch uint64, key directory.ReadKey) ([]byte, directory.Hash) {
	plain := Marshal(r)
	padded := make([]byte, len(plain)+1, (len(plain)/256+1)*256)
	copy(padded, plain)
	padded[len(plain)] = 0x80
	padded = padded[:cap(padded)]
	hdr := make([]byte, 41, 41+len(padded)+chacha20poly1305.Overhead)
	hdr[0] = 1
	tag := v1compat.NetworkTag(r.Network)
	copy(hdr[1:], tag[:])
	binary.BigEndian.PutUint64(hdr[9:], epoch)
	rand.Read(hdr[17:41])
	aead, _ := chacha20poly1305.NewX(key[:])
	return aead.Seal(hdr, hdr[17:41], padded, hdr[:41]), sha256.Sum256(plain)
}
