package dhtstore

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	ds "github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	record "github.com/libp2p/go-libp2p-record"
	ma "github.com/multiformats/go-multiaddr"
)

func TestValidatorRejects(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	v := &validator{net: nw.ID, keyring: newKeyring(1, nw.Key).get}

	e1 := nw.Entry(t, org, "asesoria", 1)
	other := nw.Entry(t, org, "albergue", 1)
	key := blindKey(t, nw.Key, e1)
	if err := v.Validate(key, directory.Seal(e1, nw.Key)); err != nil {
		t.Fatalf("a valid record under its own key: %v", err)
	}

	// A record whose body was changed after signing: the seal is fine, the
	// signature is not.
	fake := dirtest.SampleEntry("asesoria", 1, nw.Now)
	fake.Service.Name = "Asesoría falsa"
	forged := *e1
	forged.Body = nw.Sign(t, fake, org).Body

	tampered := directory.Seal(e1, nw.Key)
	tampered[len(tampered)-1] ^= 1

	otherNet := dirtest.New(t, 3, 2)
	foreign := otherNet.Entry(t, org, "asesoria", 1)

	garbage := make([]byte, 600)
	rand.Read(garbage)

	laterKey := directory.NewReadKey()
	// Under another key behind the real key's tag: the header names the
	// key, and the ciphertext does not open with it.
	behindRealTag := directory.Seal(e1, directory.NewReadKey())
	realTag := nw.Key.Tag()
	copy(behindRealTag[1:], realTag[:])

	cases := []struct {
		name  string
		key   string
		value []byte
		want  error
	}{
		{"wrong key: another record's slot", blindKey(t, nw.Key, other), directory.Seal(e1, nw.Key), ErrWrongSlot},
		{"forged signature", key, directory.Seal(&forged, nw.Key), directory.ErrBadSignature},
		{"tampered ciphertext", key, tampered, directory.ErrDecrypt},
		{"sealed under another key behind the real key's tag", key, behindRealTag, directory.ErrDecrypt},
		{"garbage", key, garbage, directory.ErrMalformed},
		{"empty", key, nil, directory.ErrMalformed},
		{"epoch this node has no key for", directory.BlindSlot(laterKey, slotID(t, e1)), directory.Seal(e1, laterKey), directory.ErrNoKey},
		{"another network's record", blindKey(t, nw.Key, foreign), directory.Seal(foreign, nw.Key), directory.ErrWrongNetwork},
		{"outside the ceiba namespace", "/pk/" + key[len("/ceiba/"):], directory.Seal(e1, nw.Key), ErrNotCeibaKey},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := v.Validate(c.key, c.value)
			if !errors.Is(err, c.want) {
				t.Fatalf("Validate = %v, want %v", err, c.want)
			}
		})
	}
}

func TestSelectPicksBestValid(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	v := &validator{net: nw.ID, keyring: newKeyring(1, nw.Key).get}
	key := blindKey(t, nw.Key, nw.Entry(t, org, "asesoria", 1))
	seal := func(seq uint64) []byte { return directory.Seal(nw.Entry(t, org, "asesoria", seq), nw.Key) }
	wrongSlot := directory.Seal(nw.Entry(t, org, "albergue", 9), nw.Key)

	got, err := v.Select(key, [][]byte{[]byte("garbage"), seal(1), seal(3), wrongSlot, seal(2)})
	if err != nil || got != 2 {
		t.Fatalf("Select = %d, %v; want index 2 (seq 3); an invalid value (seq 9 of another slot) must never win", got, err)
	}
	if _, err := v.Select(key, [][]byte{[]byte("garbage"), wrongSlot}); err == nil {
		t.Fatal("Select with no valid value succeeded")
	}
	// Two sealings of one record are equal: the first wins, so a
	// republished copy replaces the stored one and renews its age.
	e := nw.Entry(t, org, "asesoria", 5)
	if got, err := v.Select(key, [][]byte{directory.Seal(e, nw.Key), directory.Seal(e, nw.Key)}); err != nil || got != 0 {
		t.Fatalf("Select of two sealings of one record = %d, %v; want 0", got, err)
	}
}

// TestValueStoreRefusesOlderSeq runs the validator inside kad-dht's own value
// store, the code every DHT node runs on PUT_VALUE: Validate is stateless by
// libp2p's contract, and it is Select against the stored value that refuses
// a rollback.
func TestValueStoreRefusesOlderSeq(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	v := &validator{net: nw.ID, keyring: newKeyring(1, nw.Key).get}
	vs := records.NewValueStore(dssync.MutexWrap(ds.NewMapDatastore()), record.NamespacedValidator{keyNamespace: v}, MaxRecordAge)
	ctx := context.Background()
	e1, e2 := nw.Entry(t, org, "asesoria", 1), nw.Entry(t, org, "asesoria", 2)
	key := blindKey(t, nw.Key, e1)
	put := func(r *directory.Record) error {
		return vs.Put(ctx, key, record.MakePutRecord(key, directory.Seal(r, nw.Key)))
	}
	if err := put(e2); err != nil {
		t.Fatal(err)
	}
	if err := put(e1); !errors.Is(err, records.ErrOldRecord) {
		t.Fatalf("put of seq 1 over seq 2 = %v, want ErrOldRecord", err)
	}
	if err := put(e2); err != nil {
		t.Fatalf("republishing seq 2 (fresh nonce) was refused: %v", err)
	}
	got, err := vs.Get(ctx, key)
	if err != nil || got == nil {
		t.Fatalf("get: %v", err)
	}
	r, err := v.open(key, got.GetValue())
	if err != nil || entrySeq(t, r) != 2 {
		t.Fatalf("stored record = %v, %v; want seq 2", r, err)
	}
	if err := vs.Put(ctx, key, record.MakePutRecord(key, []byte("junk"))); err == nil {
		t.Fatal("value store accepted junk")
	}
}

func TestManifestSlotMatchesRecordSlot(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	id := dirtest.MustIdentity(t)
	r := nw.Sign(t, &directory.Manifest{Page: 2, Pages: 3, Issued: nw.Now.Unix()}, id)
	if slot, _ := r.Slot(); slot != ManifestSlot(id.Public(), 2) {
		t.Fatalf("Record.Slot = %q, ManifestSlot = %q", slot, ManifestSlot(id.Public(), 2))
	}
	if slot, _ := nw.Genesis.Slot(); slot != CharterSlot(1) {
		t.Fatalf("Record.Slot = %q, CharterSlot = %q", slot, CharterSlot(1))
	}
}

func TestPublicAddrs(t *testing.T) {
	keep := []string{"/ip4/1.2.3.4/tcp/4001", "/dns4/nodo.example.org/tcp/443/wss", "/ip6/2001:4860::1/udp/4001/quic-v1",
		"/ip4/1.2.3.4/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"}
	drop := []string{"/ip4/127.0.0.1/tcp/4001", "/ip4/192.168.1.10/tcp/4001", "/ip4/10.0.0.2/udp/4001/quic-v1",
		"/ip6/::1/tcp/4001", "/ip6/fe80::1/tcp/4001", "/dns4/localhost/tcp/4001", "/ip4/100.64.0.1/tcp/1"}
	var in []ma.Multiaddr
	for _, s := range append(keep, drop...) {
		in = append(in, ma.StringCast(s))
	}
	out := publicAddrs(in)
	if len(out) != len(keep) {
		t.Fatalf("publicAddrs kept %v, want %v", out, keep)
	}
	for i, a := range out {
		if a.String() != keep[i] {
			t.Fatalf("publicAddrs kept %v, want %v", out, keep)
		}
	}
}
