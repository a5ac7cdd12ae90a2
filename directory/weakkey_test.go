package directory_test

import (
	"crypto/ed25519"
	"encoding/hex"
	"math/big"
	"strings"
	"testing"

	"github.com/fxamacker/cbor/v2"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// neutralKey is the Ed25519 neutral element, 01 00…00: a point of order 1.
var neutralKey = directory.PublicKey{1}

// neutralKeyNonCanonical names the same point with x's sign bit set,
// which RFC 8032 forbids for x = 0 but lenient decoders accept.
var neutralKeyNonCanonical = func() directory.PublicKey {
	k := neutralKey
	k[31] |= 0x80
	return k
}()

// universalSig is R = neutral element, S = 0: under a small-order key it
// verifies for every message, since [0]B = R + [h]A = identity.
var universalSig = append([]byte{1}, make([]byte, 63)...)

// forgeRecord encodes a record of type t around body, "signed" by key
// with the universal signature, without going through NewRecord's checks.
func forgeRecord(t *testing.T, typ directory.RecordType, body any, key directory.PublicKey) []byte {
	t.Helper()
	enc, err := cbor.CoreDetEncOptions().EncMode()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := enc.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	rec := directory.Record{Version: directory.FormatVersion, Type: typ, Network: directory.NetworkID{7},
		Body: raw, Sigs: []directory.Signature{{Key: key, Sig: universalSig}}}
	data, err := enc.Marshal(&rec)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// Finding 3 of issue 20: under the neutral-element key the fixed signature
// verified a self-revocation and an entry. Both, and the same under a
// non-canonical encoding of that key, must be refused at decoding.
func TestSmallOrderKeyForgesNothing(t *testing.T) {
	if !ed25519.Verify(neutralKey[:], []byte("any message at all"), universalSig) {
		t.Fatal("premise: the universal signature should verify under the neutral key with crypto/ed25519")
	}
	now := dirtest.Epoch
	for _, key := range []directory.PublicKey{neutralKey, neutralKeyNonCanonical} {
		for name, tc := range map[string]struct {
			typ  directory.RecordType
			body any
		}{
			"revocation": {directory.TypeRevocation, &directory.Revocation{Key: key, Reason: "forged", Issued: now.Unix()}},
			"entry":      {directory.TypeEntry, dirtest.SampleEntry("forged", 1, now)},
		} {
			r, err := directory.DecodeRecord(forgeRecord(t, tc.typ, tc.body, key))
			if err == nil {
				t.Fatalf("%s signed by weak key %s was accepted: %+v", name, key.Hex(), r.Type)
			}
			if !strings.Contains(err.Error(), "small order") && !strings.Contains(err.Error(), "non-canonical") {
				t.Fatalf("%s under weak key %s refused for another reason: %v", name, key.Hex(), err)
			}
		}
	}
}

// nonCanonicalLargeOrder finds an encoding whose y coordinate is at or above
// the field prime but reduces to a point of large order.
func nonCanonicalLargeOrder(t *testing.T) directory.PublicKey {
	p := new(big.Int).Sub(new(big.Int).Lsh(big.NewInt(1), 255), big.NewInt(19))
	for y := int64(2); y < 19; y++ {
		v := new(big.Int).Add(p, big.NewInt(y)).Bytes() // big-endian, 32 bytes
		var k directory.PublicKey
		for i := range v {
			k[i] = v[len(v)-1-i]
		}
		if _, err := directory.ParsePublicKeyHex(hex.EncodeToString(k[:])); err != nil && strings.Contains(err.Error(), "non-canonical") {
			return k
		}
	}
	t.Fatal("no y in p+2..p+18 decodes to a point")
	return directory.PublicKey{}
}

func TestCheckPublicKeyRefusesWeakEncodings(t *testing.T) {
	good := dirtest.MustIdentity(t).Public()
	if err := directory.CheckPublicKey(good); err != nil {
		t.Fatalf("a generated key is refused: %v", err)
	}
	if _, err := directory.ParsePublicKeyHex(good.Hex()); err != nil {
		t.Fatalf("a generated key's hex is refused: %v", err)
	}
	// y = -1, x = 0: the point of order 2.
	orderTwo, _ := hex.DecodeString("ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f")
	weak := map[string]directory.PublicKey{
		"neutral element":             neutralKey,
		"neutral element, sign bit":   neutralKeyNonCanonical,
		"order two":                   directory.PublicKey(orderTwo),
		"y above the prime":           nonCanonicalLargeOrder(t),
		"not on the curve (y = 2)...": {2},
	}
	for name, k := range weak {
		if err := directory.CheckPublicKey(k); err == nil {
			t.Errorf("%s (%s) accepted", name, k.Hex())
		}
		if _, err := directory.ParsePublicKeyHex(k.Hex()); err == nil {
			t.Errorf("ParsePublicKeyHex accepted %s (%s)", name, k.Hex())
		}
	}
}
