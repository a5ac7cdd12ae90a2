package directory_test

import (
	"bytes"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base32"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// readSubkey is the derivation PROTOCOL.md states, written out again here
// so that a change to it in seal.go shows up as a failing test.
func readSubkey(t *testing.T, key directory.ReadKey, label string) []byte {
	t.Helper()
	k, err := hkdf.Key(sha256.New, key[:], nil, label, 32)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Finding 5 of issue 20: the read key was both the AEAD key of every seal
// and the HMAC key of every blinded DHT key. Each use now has its own
// HKDF-SHA256 subkey, and the read key itself opens nothing.
func TestReadKeySubkeysAreSeparate(t *testing.T) {
	nw := dirtest.New(t, 1, 1)
	org := dirtest.MustIdentity(t)
	rec := nw.Entry(t, org, "asesoria", 1)
	sealed := directory.Seal(rec, nw.Key)
	header, ct := sealed[:directory.SealHeaderLen], sealed[directory.SealHeaderLen:]
	nonce := header[len(header)-chacha20poly1305.NonceSizeX:]

	raw, _ := chacha20poly1305.NewX(nw.Key[:])
	if _, err := raw.Open(nil, nonce, ct, header); err == nil {
		t.Fatal("a sealed record opens under the read key itself")
	}
	sealKey := readSubkey(t, nw.Key, "ceiba read key v1: seal")
	sub, _ := chacha20poly1305.NewX(sealKey)
	if _, err := sub.Open(nil, nonce, ct, header); err != nil {
		t.Fatalf("a sealed record does not open under the seal subkey: %v", err)
	}

	blindKey := readSubkey(t, nw.Key, "ceiba read key v1: dht slot")
	if bytes.Equal(blindKey, sealKey) || bytes.Equal(blindKey, nw.Key[:]) {
		t.Fatal("the DHT blinding subkey equals the seal subkey or the read key")
	}
	slot := directory.SlotID{1, 2, 3}
	m := hmac.New(sha256.New, blindKey)
	m.Write([]byte("ceiba dht slot v2\x00"))
	m.Write(slot[:])
	want := "/ceiba/" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(m.Sum(nil))
	if got := directory.BlindSlot(nw.Key, slot); got != want {
		t.Fatalf("BlindSlot = %s, want the HMAC under the blinding subkey %s", got, want)
	}
}
