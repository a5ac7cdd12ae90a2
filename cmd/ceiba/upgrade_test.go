package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/ipfs/go-datastore/query"
	pebbleds "github.com/ipfs/go-ds-pebble"

	"github.com/ceiba-network/ceiba/directory"
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
// one line that says why and where to read about upgrading, leaving every
// stored record as it was for the upgrade.
func TestHomeOfProtocolVersion1(t *testing.T) {
	home := filepath.Join(t.TempDir(), "home")
	if err := os.CopyFS(home, os.DirFS("testdata/v1home")); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(home, "config.toml")
	raw, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The fixture's API port was free where it was made; take one free here.
	raw = regexp.MustCompile(`listen = "127\.0\.0\.1:\d+"`).ReplaceAll(raw, []byte(`listen = "127.0.0.1:`+freePort(t)+`"`))
	if err := os.WriteFile(cfg, raw, 0o600); err != nil {
		t.Fatal(err)
	}

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
	after := storedRecords(t, filepath.Join(home, "data", "store"))
	if len(after) != len(before) {
		t.Fatalf("the store holds %d records after the refusal, %d before", len(after), len(before))
	}
	for k, v := range before {
		if after[k] != v {
			t.Fatalf("record %s changed or vanished after the refusal", k)
		}
	}
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
