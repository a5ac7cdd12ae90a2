package main

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	pebbleds "github.com/ipfs/go-ds-pebble"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/v1compat"
	"github.com/ceiba-network/ceiba/directory/v1compat/v1test"
	"github.com/ceiba-network/ceiba/node/api"
)

// testdata/v1home is an organization's home written by protocol version 1
// (commit a5d5f10, the last before version 2's changes, 2026-11-26): made
// with that commit's binary by `ceiba init`, `ceiba daemon`, `ceiba invite
// accept` (a member invite from a one-steward network) and `ceiba entry
// publish`, then stopped. Its passphrase and key fingerprint:
const (
	v1Passphrase  = "ceiba-v1-fixture-passphrase"
	v1Fingerprint = "lza5c-5rgud-umj4w-qrdey-4dtz2"
)

// Issue 18, item 2 (upgrades that keep data): a version-2 binary opens a
// version-1 home's keys as they are (the keystore format did not change,
// PROTOCOL.md §10, step 1), and refuses to run the node on its store in
// one line that says why and to run "ceiba upgrade", leaving every stored
// record as it was for the upgrade.
func TestHomeOfProtocolVersion1(t *testing.T) {
	home, _ := v1Home(t)

	ks, err := directory.LoadKeystore(filepath.Join(home, "keys.age"), v1Passphrase)
	if err != nil {
		t.Fatalf("the version-1 keystore does not open: %v", err)
	}
	if got := ks.Identity.Fingerprint(); got != v1Fingerprint || len(ks.Keys) != 1 {
		t.Fatalf("the version-1 keystore holds %s with %d read keys, want %s with 1", got, len(ks.Keys), v1Fingerprint)
	}

	before := storedRecords(t, filepath.Join("testdata", "v1home", "data", "store"))
	if len(before) < 4 {
		t.Fatalf("the fixture holds %d records, want its charter, epoch, membership and entry", len(before))
	}
	r := ceiba(t, []string{"CEIBA_PASSPHRASE=" + v1Passphrase}, "--home", home, "daemon")
	mustFail(t, r, "written by another version of the Ceiba protocol")
	mustFail(t, r, "PROTOCOL.md §10")
	mustFail(t, r, `run "ceiba upgrade"`)
	if !equalMaps(before, storedRecords(t, filepath.Join(home, "data", "store"))) {
		t.Fatal("a record changed or vanished after the refusal")
	}
}

// v1Home copies the fixture to a fresh home and gives it a free API port.
func v1Home(t *testing.T) (home, apiPort string) {
	t.Helper()
	home = filepath.Join(t.TempDir(), "home")
	if err := os.CopyFS(home, os.DirFS("testdata/v1home")); err != nil {
		t.Fatal(err)
	}
	// The modes the version-1 binary gave them, which git does not keep
	// (a daemon tightens looser ones, and says so on its output).
	for name, mode := range map[string]os.FileMode{".": 0o700, "keys.age": 0o600, "api.token": 0o600, "revocation.cert": 0o600} {
		if err := os.Chmod(filepath.Join(home, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(home, "config.toml")
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The fixture's API port was free where it was made; take one free here.
	apiPort = freePort(t)
	raw = regexp.MustCompile(`listen = "127\.0\.0\.1:\d+"`).ReplaceAll(raw, []byte(`listen = "127.0.0.1:`+apiPort+`"`))
	if err := os.WriteFile(cfg, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	return home, apiPort
}

// storedRecords reads every key and value of a pebble store, from a copy
// so that the fixture itself is never opened for writing.
func storedRecords(t *testing.T, dir string) map[string]string {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "store")
	if err := os.CopyFS(cp, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	ds, err := pebbleds.NewDatastore(cp, nil)
	if err != nil {
		t.Fatalf("opening %s: %v", dir, err)
	}
	defer ds.Close()
	res, err := ds.Query(context.Background(), query.Query{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for e := range res.Next() {
		if e.Error != nil {
			t.Fatal(e.Error)
		}
		out[e.Key] = string(e.Value)
	}
	return out
}

// Issue 18, item 2: "ceiba upgrade" carries an organization from a
// version-1 home into a version-2 network without losing its identity or
// its entries, and without retyping them. On a copy of the fixture, with a
// second entry of the organization's own (signed with its version-1 key
// now, so that the test does not depend on the fixture entry's expiry) and
// a forged newer version of the fixture's entry (made by someone holding
// the read key, as any version-1 member did): the upgrade keeps the key,
// keeps both real entries, reports and skips the forged one, and moves the
// version-1 store aside unchanged; a second run says it is done. A
// version-2 steward invites the home; after "ceiba invite accept", its
// daemon re-publishes the entries under version 2 (same IDs, seq + 1) by
// itself, and the steward's node finds them, signed by the same key.
func TestUpgradeFromProtocolVersion1(t *testing.T) {
	home, apiPort := v1Home(t)
	env := []string{"CEIBA_PASSPHRASE=" + v1Passphrase, "CEIBA_KDF_WORK_FACTOR=10"}
	now := time.Now()

	// The fixture's version-1 network, read key and signing key.
	raw, err := os.ReadFile(filepath.Join(home, "config.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var netID directory.NetworkID
	m := regexp.MustCompile(`id = "([0-9a-f]{64})"`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("the fixture's config names no network")
	}
	hex.Decode(netID[:], m[1])
	ks, err := directory.LoadKeystore(filepath.Join(home, "keys.age"), v1Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	sealedKS, _ := os.ReadFile(filepath.Join(home, "keys.age"))
	plain, err := directory.DecryptWithPassphrase(sealedKS, v1Passphrase)
	if err != nil {
		t.Fatal(err)
	}
	var secrets struct {
		Seed []byte `cbor:"2,keyasint"`
	}
	if err := cbor.Unmarshal(plain, &secrets); err != nil || len(secrets.Seed) != ed25519.SeedSize {
		t.Fatalf("the fixture's keystore: %v", err)
	}
	orgKey := ed25519.NewKeyFromSeed(secrets.Seed)
	var epoch uint64
	for n := range ks.Keys {
		epoch = n
	}
	readKey := ks.Keys[epoch]

	// Find the fixture's entry, forge a newer version of it, and add a
	// fresh entry of the organization's own.
	storeDir := filepath.Join(home, "data", "store")
	var original *directory.Entry
	var originalRec *v1compat.Record
	for _, v := range storedRecords(t, storeDir) {
		if r, err := v1compat.Open([]byte(v), netID, ks.Keys); err == nil && r.Type == v1compat.TypeEntry {
			originalRec = r
			original, _ = r.Entry()
		}
	}
	if original == nil || original.ID != "asesoria-juridica" {
		t.Fatalf("the fixture's entry: %+v", original)
	}
	forgedEntry := *original
	forgedService := *original.Service
	forgedService.Name = "Asesoría falsa"
	forgedEntry.Seq, forgedEntry.Service = original.Seq+5, &forgedService
	forged := *originalRec
	forged.Body = v1test.Marshal(&forgedEntry)
	forgedSealed, forgedHash := v1test.Seal(&forged, epoch, readKey)
	fresh := &directory.Entry{ID: "acompanamiento-psicosocial", Seq: 3, Issued: now.Add(-time.Hour).Unix(), Expires: now.Add(30 * 24 * time.Hour).Unix(),
		Service: &directory.Service{Name: "Acompañamiento psicosocial", Status: "active", Categories: []string{"psychosocial"}, Languages: []string{"es"},
			Contacts: []directory.Contact{{Kind: "signal", Value: "+52 55 1111 1111"}}}}
	freshSealed, freshHash := v1test.Seal(v1test.Record(netID, v1compat.TypeEntry, fresh, orgKey), epoch, readKey)
	ds, err := pebbleds.NewDatastore(storeDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	for h, v := range map[directory.Hash][]byte{forgedHash: forgedSealed, freshHash: freshSealed} {
		if err := ds.Put(context.Background(), datastore.NewKey("/records/"+hex.EncodeToString(h[:])), v); err != nil {
			t.Fatal(err)
		}
	}
	ds.Close()
	before := storedRecords(t, storeDir)
	fixtureLive := now.Unix() < original.Expires

	r := ceiba(t, env, "--home", home, "upgrade")
	if r.code != 0 {
		t.Fatalf("ceiba upgrade: %s", r.stderr)
	}
	for _, want := range []string{v1Fingerprint, `"acompanamiento-psicosocial"`, "Not carried over (record " + forgedHash.Short(), "signature does not verify", "store.v1", "invite accept"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("ceiba upgrade does not say %q:\n%s", want, r.stdout)
		}
	}
	if fixtureLive != strings.Contains(r.stdout, `"asesoria-juridica"`) || strings.Contains(r.stdout, "falsa") {
		t.Fatalf("ceiba upgrade kept the wrong entries (the fixture's is live: %v):\n%s", fixtureLive, r.stdout)
	}
	if again := ceiba(t, env, "--home", home, "upgrade"); again.code != 0 || !strings.Contains(again.stdout, "was upgraded") {
		t.Fatalf("a second ceiba upgrade: %d %q %q", again.code, again.stdout, again.stderr)
	}
	if !equalMaps(before, storedRecords(t, filepath.Join(home, "data", "store.v1"))) {
		t.Fatal("data/store.v1 does not hold the version-1 store's records unchanged")
	}

	// A version-2 network, and the upgraded home admitted to it.
	steward, stewardAPI := initHome(t)
	startDaemon(t, steward, stewardAPI)
	mustRun(t, steward, "network", "create", "--name", "Red versión 2")
	var inv api.Invite
	if err := json.Unmarshal([]byte(mustRun(t, steward, "--json", "invite", "create", "--role", "member", "--expires", "1h")), &inv); err != nil {
		t.Fatal(err)
	}
	_, _, logs := startDaemonEnv(t, env, home, apiPort)
	if st := daemonStatus(t, home); st.Fingerprint != v1Fingerprint {
		t.Fatalf("the upgraded home's key is %s, want %s", st.Fingerprint, v1Fingerprint)
	}
	mustFail(t, ceiba(t, env, "--home", home, "upgrade"), "stop \"ceiba daemon\" first")
	mustRun(t, home, "invite", "accept", inv.Code)
	want := map[string]uint64{"acompanamiento-psicosocial": fresh.Seq + 1}
	if fixtureLive {
		want[original.ID] = original.Seq + 1
	}
	waitUntil(t, 2*time.Minute, "the kept entries on the steward's node", func() bool {
		for id, seq := range want {
			r := ceiba(t, testEnv, "--home", steward, "--json", "show", id)
			var e api.Entry
			if r.code != 0 || json.Unmarshal([]byte(r.stdout), &e) != nil || e.Seq != seq || e.Publisher != v1Fingerprint || !e.Verified {
				return false
			}
		}
		return true
	})
	if strings.Contains(mustRun(t, steward, "--json", "search", "falsa"), "falsa") || strings.Contains(logs.String(), "falsa") {
		t.Fatal("the forged version-1 entry reached the version-2 network")
	}
}

// A version-1 store whose files are damaged is not upgraded: "ceiba
// upgrade" says so in one line and changes nothing in the home, so that
// the person can restore a backup and try again.
func TestUpgradeOfADamagedVersion1Store(t *testing.T) {
	home, _ := v1Home(t)
	table := filepath.Join(home, "data", "store", "000005.sst")
	raw, err := os.ReadFile(table)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/3] ^= 0xff
	if err := os.WriteFile(table, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, home)
	mustFail(t, ceiba(t, []string{"CEIBA_PASSPHRASE=" + v1Passphrase}, "--home", home, "upgrade"), "the version-1 store cannot be read, and nothing was changed")
	if after := snapshot(t, home); !equalMaps(before, after) {
		t.Fatal("a refused upgrade changed the home")
	}
}
