//go:build !js

package core_test

import (
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/webapp/core"
)

// What the app shows and decides from the status: the reader's own key,
// how many entries the view holds and keys it has (a new key makes the app
// keep its keystore again), and whether the view holds the revocation of
// this reader's key, which stops its syncing.
func TestStatusSaysKeysEntriesAndRevocation(t *testing.T) {
	w := newWasmNetwork(t)
	ks, err := directory.DecryptKeystore(w.keystore, wasmPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	r := core.NewReader(w.nw.ID, ks.Identity, ks.Keys, nil)
	if s := r.Status(); s.Entries != 0 || s.Keys != 1 || s.Revoked || s.Fingerprint != w.reader.Fingerprint() {
		t.Fatalf("a fresh view's status %+v: want no entries, one key, this reader's fingerprint, not revoked", s)
	}
	for _, s := range w.sealed {
		r.Receive(s)
	}
	if s := r.Status(); s.Entries != 3 || s.Keys != 2 || s.Revoked {
		t.Fatalf("after the records, status %+v: want 3 entries and the rotation's key, not revoked", s)
	}
	if _, err := r.Receive(directory.Seal(w.nw.RevokeBy(t, w.reader.Public()), w.keys[2])); err != nil {
		t.Fatal(err)
	}
	if s := r.Status(); !s.Revoked {
		t.Errorf("after this reader's revocation, status %+v: want revoked", s)
	}
}
