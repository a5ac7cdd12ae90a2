//go:build !js

package core_test

import (
	"bytes"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/webapp/core"
)

// What the app keeps for a reload: records sealed under the newest key,
// which rebuild the same view (digest, search) in a new reader holding the
// keystore's keys, in reverse order too, and which contain none of the
// entries' text in clear.
func TestExportRebuildsTheView(t *testing.T) {
	w := newWasmNetwork(t)
	ks, err := directory.DecryptKeystore(w.keystore, wasmPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	r := core.NewReader(w.nw.ID, ks.Identity, ks.Keys, nil)
	for _, s := range w.sealed {
		r.Receive(s)
	}
	kept := r.Export()
	if len(kept) == 0 {
		t.Fatal("Export kept nothing")
	}
	for _, s := range kept {
		if bytes.Contains(s, []byte("asesoria")) || bytes.Contains(s, []byte("Casa de acogida")) {
			t.Fatal("a kept record shows an entry's text in clear")
		}
	}
	again := core.NewReader(w.nw.ID, ks.Identity, r.Keys(), nil)
	for i := len(kept) - 1; i >= 0; i-- {
		again.Receive(kept[i])
	}
	if again.Digest() != r.Digest() {
		t.Errorf("the view rebuilt from the kept records has digest %x, want %x", again.Digest(), r.Digest())
	}
	if got := again.Search(directory.Query{Text: "acogida"}); len(got) != 1 {
		t.Errorf("a search in the rebuilt view found %d entries, want 1", len(got))
	}
	// Without a key, nothing is kept: there is nothing to seal under.
	if got := core.NewReader(w.nw.ID, nil, nil, nil).Export(); got != nil {
		t.Errorf("a reader without keys kept %d records", len(got))
	}
}
