package daemon

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/v1compat"
	"github.com/ceiba-network/ceiba/directory/v1compat/v1test"
)

func v1key(t *testing.T) (ed25519.PrivateKey, directory.PublicKey) {
	t.Helper()
	_, k, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k, directory.PublicKey(k.Public().(ed25519.PublicKey))
}

// What a version-1 home carries over (issue 18, item 2): its own newest,
// live entries only; and for a steward, the organizations the threshold
// admitted, the readers they vouched for, and every revoked key, each
// checked against version 1's signatures. A proposal one steward short, a
// reader of an organization never admitted, another organization's entry
// and a forged entry in this home's name are not carried.
func TestUpgradeCarriesOwnEntriesAndStewardLists(t *testing.T) {
	var net directory.NetworkID
	rand.Read(net[:])
	key := directory.NewReadKey()
	now := time.Now()
	me, mePub := v1key(t)
	s2, s2Pub := v1key(t)
	s3, s3Pub := v1key(t)
	orgA, orgAPub := v1key(t)
	orgB, orgBPub := v1key(t)
	_, gone := v1key(t)
	_, readerA := v1key(t)
	_, readerB := v1key(t)
	stored := map[directory.Hash][]byte{}
	put := func(r *v1compat.Record) {
		s, h := v1test.Seal(r, 1, key)
		stored[h] = s
	}
	svc := &directory.Service{Name: "Refugio", Status: "active", Categories: []string{"shelter"}, Languages: []string{"es"}, Contacts: []directory.Contact{{Kind: "email", Value: "a@example.org"}}}
	ent := func(id string, seq uint64, expires time.Time, deleted bool) *directory.Entry {
		e := &directory.Entry{ID: id, Seq: seq, Issued: now.Add(-time.Hour).Unix(), Expires: expires.Unix(), Deleted: deleted}
		if !deleted {
			e.Service = svc
		}
		return e
	}
	put(v1test.Record(net, v1compat.TypeCharter, &v1compat.Charter{Name: "Red", Version: 1, Threshold: 2, Policy: []byte{0xa0}, Issued: now.Unix(),
		Stewards: []v1compat.Steward{{Key: mePub, KEM: []byte{1}, Name: "Yo"}, {Key: s2Pub, KEM: []byte{1}, Name: "S2"}, {Key: s3Pub, KEM: []byte{1}, Name: "S3"}}}, s2, s3))
	put(v1test.Record(net, v1compat.TypeMembership, &v1compat.Membership{Charter: 1, Org: orgAPub, KEM: []byte{1}, Name: "Colectivo A", Issued: now.Unix()}, s2))
	put(v1test.Approval(net, v1compat.TypeMembership, &v1compat.Membership{Charter: 1, Org: orgAPub, KEM: []byte{1}, Name: "Colectivo A", Issued: now.Unix()}, s3))
	put(v1test.Record(net, v1compat.TypeMembership, &v1compat.Membership{Charter: 1, Org: orgBPub, KEM: []byte{1}, Name: "Colectivo B", Issued: now.Unix()}, s2))
	put(v1test.Record(net, v1compat.TypeRevocation, &v1compat.Revocation{Key: gone, Charter: 1, Reason: "device seized", Issued: now.Unix()}, s2, s3))
	put(v1test.Record(net, v1compat.TypeReader, &v1compat.Reader{Key: readerA, KEM: []byte{1}, Label: "abogada", Issued: now.Unix()}, orgA))
	put(v1test.Record(net, v1compat.TypeReader, &v1compat.Reader{Key: readerB, KEM: []byte{1}, Issued: now.Unix()}, orgB))
	// This home's entries: two versions of one, a deleted and an expired one.
	put(v1test.Record(net, v1compat.TypeEntry, ent("refugio", 1, now.Add(24*time.Hour), false), me))
	put(v1test.Record(net, v1compat.TypeEntry, ent("refugio", 4, now.Add(48*time.Hour), false), me))
	put(v1test.Record(net, v1compat.TypeEntry, ent("cerrado", 2, now.Add(24*time.Hour), true), me))
	put(v1test.Record(net, v1compat.TypeEntry, ent("viejo", 1, now.Add(-time.Minute), false), me))
	put(v1test.Record(net, v1compat.TypeEntry, ent("otro", 1, now.Add(24*time.Hour), false), orgA))
	// Someone holding the read key writes a newer version in this home's name.
	forged := v1test.Record(net, v1compat.TypeEntry, ent("refugio", 4, now.Add(48*time.Hour), false), me)
	forged.Body = v1test.Marshal(ent("refugio", 9, now.Add(48*time.Hour), false))
	put(forged)

	rep := carryOver(stored, net, directory.Keyring{1: key}, mePub, now)
	c := rep.Carried
	if len(c.Entries) != 1 || c.Entries[0].ID != "refugio" || c.Entries[0].Seq != 4 {
		t.Fatalf("carried %+v, want refugio at seq 4 only", c.Entries)
	}
	if rep.Deleted != 1 || rep.Expired != 1 || len(rep.Skipped) != 1 {
		t.Fatalf("deleted %d, expired %d, skipped %q; want 1, 1 and the forged one", rep.Deleted, rep.Expired, rep.Skipped)
	}
	fps := func(l []ListedKey) []string {
		var out []string
		for _, k := range l {
			out = append(out, k.Fingerprint)
		}
		return out
	}
	if got := fps(c.Members); !slices.Equal(got, []string{directory.Fingerprint(orgAPub)}) {
		t.Errorf("members %v, want only Colectivo A (B lacks a steward's approval)", got)
	}
	if got := fps(c.Readers); !slices.Equal(got, []string{directory.Fingerprint(readerA)}) || c.Readers[0].VouchedBy != directory.Fingerprint(orgAPub) {
		t.Errorf("readers %+v, want only A's reader", c.Readers)
	}
	if got := fps(c.Revoked); !slices.Equal(got, []string{directory.Fingerprint(gone)}) || c.Revoked[0].Name != "device seized" {
		t.Errorf("revoked %+v, want the seized key", c.Revoked)
	}

	// An organization's home gets no lists.
	if rep := carryOver(stored, net, directory.Keyring{1: key}, orgAPub, now); len(rep.Carried.Members)+len(rep.Carried.Readers)+len(rep.Carried.Revoked) != 0 || len(rep.Carried.Entries) != 1 || rep.Carried.Entries[0].ID != "otro" {
		t.Fatalf("an organization's home carried %+v", rep.Carried)
	}
}

// keys.v1.age, which the upgrade keeps, holds the same identity as
// keys.age: a wipe overwrites it too before removing the home, so that a
// copy of its blocks (a hard link here) holds nothing left to decrypt.
func TestWipeOverwritesTheVersion1Keystore(t *testing.T) {
	home := Home{Dir: filepath.Join(t.TempDir(), "home")}
	if err := os.MkdirAll(home.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	secret := []byte("age-encryption.org/v1 the version-1 keystore")
	for _, p := range []string{home.KeysPath(), home.KeysV1Path()} {
		if err := os.WriteFile(p, secret, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(t.TempDir(), "link")
	if err := os.Link(home.KeysV1Path(), outside); err != nil {
		t.Skipf("no hard links here: %v", err)
	}
	if err := Wipe(home); err != nil {
		t.Fatal(err)
	}
	left, err := os.ReadFile(outside)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(left, []byte("keystore")) {
		t.Fatal("the wipe left the version-1 keystore's bytes on disk")
	}
}

// An upgrade cut short after it moved the version-1 store aside (a power
// cut before the keystore and config.toml were rewritten) is finished by
// the next run: the identity is kept, the version-1 read keys leave the
// keystore (they would stand for the new network's epochs), the network
// is forgotten, and the version-1 keystore is still in keys.v1.age.
func TestUpgradeInterruptedIsFinishedByTheNextRun(t *testing.T) {
	const pass = "ceiba-v1-fixture-passphrase" // cmd/ceiba/upgrade_test.go
	home := Home{Dir: filepath.Join(t.TempDir(), "home")}
	if err := os.CopyFS(home.Dir, os.DirFS("../../cmd/ceiba/testdata/v1home")); err != nil {
		t.Fatal(err)
	}
	fixtureKeys, _ := os.ReadFile(home.KeysPath())
	fixtureConfig, _ := os.ReadFile(home.ConfigPath())
	rep, err := Upgrade(home, pass, 10, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Undo what follows the move of the store, as a crash would have.
	os.WriteFile(home.KeysPath(), fixtureKeys, 0o600)
	os.WriteFile(home.ConfigPath(), fixtureConfig, 0o600)
	again, err := Upgrade(home, pass, 10, time.Now())
	if err != nil || !again.AlreadyDone || again.Fingerprint != rep.Fingerprint || len(again.Carried.Entries) != len(rep.Carried.Entries) {
		t.Fatalf("the second run: %+v, %v", again, err)
	}
	ks, err := directory.LoadKeystore(home.KeysPath(), pass)
	if err != nil || ks.Identity.Fingerprint() != rep.Fingerprint || len(ks.Keys) != 0 {
		t.Fatalf("keys.age after the second run: %v, %d read keys", err, len(ks.Keys))
	}
	if v1, err := os.ReadFile(home.KeysV1Path()); err != nil || !bytes.Equal(v1, fixtureKeys) {
		t.Fatalf("keys.v1.age is not the version-1 keystore: %v", err)
	}
	cfg, err := home.LoadConfig()
	if err != nil || cfg.Network.ID != "" || len(cfg.Node.Bootstrap) != 0 {
		t.Fatalf("config.toml still names the version-1 network: %+v %v", cfg, err)
	}
	if _, err := os.Stat(filepath.Join(home.DataDir(), "store")); !os.IsNotExist(err) {
		t.Fatalf("data/store: %v", err)
	}
}
