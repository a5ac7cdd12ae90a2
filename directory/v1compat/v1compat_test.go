package v1compat_test

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/v1compat"
	"github.com/ceiba-network/ceiba/directory/v1compat/v1test"
)

func entry(id string, seq uint64) *directory.Entry {
	now := time.Now().Unix()
	return &directory.Entry{ID: id, Seq: seq, Issued: now, Expires: now + 3600, Service: &directory.Service{
		Name: "Asesoría", Status: "active", Categories: []string{"legal"}, Languages: []string{"es"},
		Contacts: []directory.Contact{{Kind: "email", Value: "a@example.org"}},
	}}
}

// A version-1 record opens with the read key of its epoch and says who
// signed it; every way it can be damaged, forged or misplaced is refused
// with the reason, never opened as something else.
func TestOpenVersion1Records(t *testing.T) {
	var net, other directory.NetworkID
	rand.Read(net[:])
	rand.Read(other[:])
	key, wrong := directory.NewReadKey(), directory.NewReadKey()
	_, org, _ := ed25519.GenerateKey(nil)
	keys := directory.Keyring{3: key}

	sealed, _ := v1test.Seal(v1test.Record(net, v1compat.TypeEntry, entry("asesoria", 2), org), 3, key)
	r, err := v1compat.Open(sealed, net, keys)
	if err != nil {
		t.Fatalf("a version-1 entry does not open: %v", err)
	}
	e, err := r.Entry()
	if err != nil || e.ID != "asesoria" || e.Seq != 2 || len(r.Sigs) != 1 || !bytes.Equal(r.Sigs[0].Key[:], org.Public().(ed25519.PublicKey)) {
		t.Fatalf("opened %+v (%v), signers %v", e, err, r.Signers())
	}

	forged := v1test.Record(net, v1compat.TypeEntry, entry("asesoria", 2), org)
	forged.Body = v1test.Marshal(entry("asesoria", 3)) // a higher version under the old signature
	badSig, _ := v1test.Seal(forged, 3, key)
	otherNet, _ := v1test.Seal(v1test.Record(other, v1compat.TypeEntry, entry("x", 1), org), 3, key)
	v2 := bytes.Clone(sealed)
	v2[0] = 2
	flipped := bytes.Clone(sealed)
	flipped[len(flipped)-20] ^= 1
	noSig := v1test.Record(net, v1compat.TypeEntry, entry("x", 1))
	unsigned, _ := v1test.Seal(noSig, 3, key)
	for _, c := range []struct {
		name   string
		sealed []byte
		keys   directory.Keyring
		want   error
	}{
		{"forged signature", badSig, keys, v1compat.ErrBadSignature},
		{"no signature", unsigned, keys, v1compat.ErrBadSignature},
		{"wrong read key", sealed, directory.Keyring{3: wrong}, v1compat.ErrDecrypt},
		{"unknown epoch", sealed, directory.Keyring{4: key}, v1compat.ErrNoKey},
		{"other network", otherNet, keys, v1compat.ErrWrongNetwork},
		{"flipped bit", flipped, keys, v1compat.ErrDecrypt},
		{"version-2 seal", v2, keys, v1compat.ErrNotVersion1},
		{"truncated", sealed[:50], keys, v1compat.ErrMalformed},
		{"empty", nil, keys, v1compat.ErrNotVersion1},
	} {
		if _, err := v1compat.Open(c.sealed, net, c.keys); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// An approval's signature is on the proposal it approves, as in version 1.
func TestVersion1Approval(t *testing.T) {
	var net directory.NetworkID
	rand.Read(net[:])
	_, st, _ := ed25519.GenerateKey(nil)
	m := &v1compat.Membership{Charter: 1, Org: directory.PublicKey{1}, KEM: []byte{1}, Name: "Org", Issued: time.Now().Unix()}
	a := v1test.Approval(net, v1compat.TypeMembership, m, st)
	r, err := v1compat.DecodeRecord(v1test.Marshal(a))
	if err != nil {
		t.Fatalf("an approval does not decode: %v", err)
	}
	if r.ProposalID() != v1test.Record(net, v1compat.TypeMembership, m, st).ProposalID() {
		t.Fatal("an approval and its proposal have different proposal IDs")
	}
	a.Sigs[0].Sig[0] ^= 1
	if _, err := v1compat.DecodeRecord(v1test.Marshal(a)); !errors.Is(err, v1compat.ErrBadSignature) {
		t.Fatalf("a broken approval signature: %v", err)
	}
}

// The decoder takes any bytes without panicking, and what it accepts is
// canonical and signed.
func FuzzDecodeRecord(f *testing.F) {
	var net directory.NetworkID
	_, k, _ := ed25519.GenerateKey(nil)
	f.Add(v1test.Marshal(v1test.Record(net, v1compat.TypeEntry, entry("a", 1), k)))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := v1compat.DecodeRecord(data)
		if err != nil {
			return
		}
		if !bytes.Equal(v1test.Marshal(r), data) || len(r.Sigs) == 0 {
			t.Fatal("accepted a non-canonical or unsigned record")
		}
		r.Entry()
		r.Membership()
		r.Reader()
		r.Revocation()
		r.Charter()
		r.ProposalBody()
	})
}
