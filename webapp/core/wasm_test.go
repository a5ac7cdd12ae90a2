//go:build !js

package core_test

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	"github.com/ceiba-network/ceiba/internal/wasmtest"
	"github.com/ceiba-network/ceiba/webapp/core"
)

// wasmNetwork is a small network seen by one reader: a charter, epoch 1
// (the key an invite hands over), an organization with three entries, a
// revoked reader, and a rotation to epoch 2 sealed to the reader, after
// which the organization publishes again under the new key.
type wasmNetwork struct {
	nw       *dirtest.Network
	reader   *directory.Identity
	keys     directory.Keyring // every key, as a node holding all of them
	sealed   [][]byte          // in a canonical order
	keystore []byte            // the reader's, holding epoch 1's key only
}

const wasmPassphrase = "correct horse battery staple 42"

func newWasmNetwork(t *testing.T) *wasmNetwork {
	nw := dirtest.New(t, 3, 2)
	nw.Now = time.Now().Truncate(time.Second)
	org, reader, gone := dirtest.MustIdentity(t), dirtest.MustIdentity(t), dirtest.MustIdentity(t)
	k2 := directory.NewReadKey()
	w := &wasmNetwork{nw: nw, reader: reader, keys: directory.Keyring{1: nw.Key, 2: k2}}
	under := func(epoch uint64, rs ...*directory.Record) {
		for _, r := range rs {
			w.sealed = append(w.sealed, directory.Seal(r, w.keys[epoch]))
		}
	}
	under(1, nw.Genesis, nw.FirstEpoch)
	under(1, nw.FirstPages...)
	under(1, nw.Admit(t, org, "Defensoras sin Fronteras"), nw.Vouch(t, org, reader), nw.Vouch(t, org, gone))
	e1 := dirtest.SampleEntry("asesoria", 1, nw.Now)
	e2 := dirtest.SampleEntry("refugio", 1, nw.Now)
	e2.Service.Name, e2.Service.Categories = "Casa de acogida temporal", []string{"shelter"}
	under(1, nw.Sign(t, e1, org), nw.Sign(t, e2, org), nw.RevokeBy(t, gone.Public()))
	var rs []directory.Recipient
	for _, id := range append(slices.Clone(nw.Stewards), org, reader) {
		rs = append(rs, directory.Recipient{Key: id.Public(), KEM: id.KEMPublic()})
	}
	epoch2, pages := nw.Rotation(t, 2, 1, directory.Hash{}, k2, rs, nw.Stewards[:2]...)
	under(1, epoch2)
	under(1, pages...)
	e3 := dirtest.SampleEntry("psicosocial", 1, nw.Now)
	e3.Service.Name, e3.Service.Categories = "Acompañamiento psicosocial", []string{"psychosocial"}
	e1v2 := dirtest.SampleEntry("asesoria", 2, nw.Now)
	e1v2.Service.Description = "Asilo, refugio y protección internacional."
	under(2, nw.Sign(t, e3, org), nw.Sign(t, e1v2, org))
	ks := &directory.Keystore{Identity: reader, Keys: directory.Keyring{1: nw.Key}}
	var err error
	if w.keystore, err = ks.Encrypt(wasmPassphrase, 10); err != nil {
		t.Fatal(err)
	}
	return w
}

// goView applies the records as a node does, with every key.
func (w *wasmNetwork) goView(t *testing.T) *directory.State {
	st := directory.NewState(w.nw.ID, nil)
	for _, s := range w.sealed {
		r, err := directory.Open(s, w.nw.ID, w.keys)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Apply(r); err != nil {
			t.Fatalf("the Go view refused a record: %v", err)
		}
	}
	return st
}

type driverOut struct {
	Open     map[string]any `json:"open"`
	Received []struct {
		Hash    *string `json:"hash"`
		Waiting bool    `json:"waiting"`
		Error   *string `json:"error"`
	} `json:"received"`
	BadInput []*string `json:"badInput"`
	Status   struct {
		Epoch   uint64 `json:"epoch"`
		KeyHeld bool   `json:"key_held"`
		Waiting int    `json:"waiting"`
		Digest  string `json:"digest"`
	} `json:"status"`
	Results       [][]struct{ Key string } `json:"results"`
	KeystoreBytes int                      `json:"keystoreBytes"`
}

// The browser's core and the Go node compute the same digest and find the
// same entries for the same records (issue 16: one core, not two), here
// with the records arriving in reverse: entries under a key the reader does
// not hold yet wait, and open once the rotation sealed to it is applied.
func TestWasmCoreAgreesWithTheNode(t *testing.T) {
	node := wasmtest.Node(t, "")
	w := newWasmNetwork(t)
	goState := w.goView(t)
	queries := []directory.Query{{Text: "asilo"}, {Category: "shelter"}, {Text: "psicosocial"}, {Text: "acogida refugio"}}

	dir := t.TempDir()
	wasm := wasmtest.Build(t, "./wasm")
	feed := slices.Clone(w.sealed)
	slices.Reverse(feed)
	feed = append(feed, w.sealed[3], w.sealed[len(w.sealed)-1]) // duplicates change nothing
	var hexed []string
	for _, s := range feed {
		hexed = append(hexed, hex.EncodeToString(s))
	}
	fixture, _ := json.Marshal(map[string]any{
		"network": w.nw.ID.String(), "keystore": hex.EncodeToString(w.keystore),
		"passphrase": wasmPassphrase, "records": hexed, "queries": queries,
	})
	fixturePath := filepath.Join(dir, "fixture.json")
	if err := os.WriteFile(fixturePath, fixture, 0o600); err != nil {
		t.Fatal(err)
	}
	wasmExec := wasmtest.ExecJS(t)
	run := exec.Command(node, "testdata/driver.mjs", wasmExec, wasm, fixturePath)
	raw, err := run.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("the driver failed: %v\n%s", err, stderr)
	}
	var out driverOut
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("the driver's output is not JSON: %v\n%s", err, raw)
	}
	if out.Open["error"] != nil {
		t.Fatalf("open: %v", out.Open["error"])
	}
	if out.Open["fingerprint"] != w.reader.Fingerprint() {
		t.Errorf("the core opened the keystore as %v, want the reader %s", out.Open["fingerprint"], w.reader.Fingerprint())
	}
	waited := 0
	for i, r := range out.Received {
		if i >= len(w.sealed) { // the duplicates
			if r.Error == nil || !strings.Contains(*r.Error, directory.ErrDuplicate.Error()) {
				t.Errorf("a duplicate (record %d) was not refused as one: %v", i, r.Error)
			}
			continue
		}
		if r.Error != nil {
			t.Errorf("record %d refused by the core: %s", i, *r.Error)
		}
		if r.Waiting {
			waited++
		}
	}
	if waited == 0 {
		t.Error("no record waited for its key: the reverse order did not exercise unlocking")
	}
	want := goState.Digest()
	if out.Status.Digest != hex.EncodeToString(want[:]) {
		t.Errorf("digest in the browser core %s, on the Go node %x", out.Status.Digest, want[:])
	}
	if out.Status.Epoch != 2 || !out.Status.KeyHeld || out.Status.Waiting != 0 {
		t.Errorf("status %+v: want epoch 2, its key held, nothing waiting", out.Status)
	}
	for i, q := range queries {
		var wantKeys, gotKeys []string
		for _, r := range goState.Search(q) {
			wantKeys = append(wantKeys, r.Key)
		}
		for _, r := range out.Results[i] {
			gotKeys = append(gotKeys, r.Key)
		}
		if len(wantKeys) == 0 || !slices.Equal(gotKeys, wantKeys) {
			t.Errorf("query %+v: browser core found %v, the Go node %v", q, gotKeys, wantKeys)
		}
	}
	for i, e := range out.BadInput {
		if e == nil || *e == "" {
			t.Errorf("bad input %d was not refused with a reason", i)
		}
	}
	if out.KeystoreBytes == 0 {
		t.Error("the core did not re-encrypt the keystore with the keys it gained")
	}
}

// The core in Go, without WebAssembly: any order of the records gives the
// node's digest, and a record the reader cannot use yet waits, within
// bounds a peer cannot push past.
func TestReaderAnyOrderAndBoundedWaiting(t *testing.T) {
	w := newWasmNetwork(t)
	want := w.goView(t).Digest()
	ks, err := directory.DecryptKeystore(w.keystore, wasmPassphrase)
	if err != nil {
		t.Fatal(err)
	}
	for trial := 0; trial < 5; trial++ {
		feed := slices.Clone(w.sealed)
		mrand.New(mrand.NewPCG(uint64(trial), 7)).Shuffle(len(feed), func(i, j int) { feed[i], feed[j] = feed[j], feed[i] })
		r := core.NewReader(w.nw.ID, ks.Identity, ks.Keys, nil)
		for _, s := range feed {
			r.Receive(s)
		}
		if got := r.Digest(); got != want {
			t.Fatalf("order %d: digest %x, the node's %x", trial, got[:6], want[:6])
		}
		if st := r.Status(); !st.KeyHeld || st.Epoch != 2 || st.Waiting != 0 {
			t.Fatalf("order %d: status %+v", trial, st)
		}
	}

	r := core.NewReader(w.nw.ID, ks.Identity, ks.Keys, nil)
	stranger := directory.NewReadKey()
	for i := 0; i < 5000; i++ {
		e := dirtest.SampleEntry(fmt.Sprintf("junk-%d", i), 1, w.nw.Now)
		rec := w.nw.Sign(t, e, w.reader)
		if _, err := r.Receive(directory.Seal(rec, stranger)); !errors.Is(err, directory.ErrNoKey) {
			t.Fatalf("a record under an epoch nobody holds: %v, want ErrNoKey", err)
		}
	}
	if got := r.Status().Waiting; got != 4096 {
		t.Fatalf("%d records waiting after 5,000 under an unknown epoch, want the bound 4,096", got)
	}
	if _, err := r.Receive([]byte("garbage")); err == nil || errors.Is(err, directory.ErrNoKey) {
		t.Fatalf("garbage: %v, want a refusal naming what was wrong", err)
	}
}
