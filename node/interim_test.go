package node

import (
	"context"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A store written by a build of version 2 from before the envelope said 2
// (through 82fc6f1): every record as version 2 has it but for an envelope
// version of 1, stored under the hash of that encoding. The node starts on
// it with the same directory (PROTOCOL.md §10, "Records stored with
// envelope version 1"), every record stored again under its version-2 hash
// and the old copies gone, and a second start finds nothing to rewrite. A
// record whose signature does not hold with the version changed is still
// refused: the rewrite checks as Open does.
func TestStoreWithEnvelopeVersion1Starts(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	recs := []*directory.Record{nw.Genesis, nw.FirstEpoch, nw.Admit(t, org, "Colectivo Ejemplo"), entryRec(t, nw, org, "asesoria", 1)}
	ref := &reference{t: t, nw: nw, recs: recs}
	forged := entryRec(t, nw, org, "albergue", 1)
	forged.Body = append([]byte(nil), forged.Body...)
	forged.Body[len(forged.Body)-1] ^= 1 // the signature no longer covers it

	dir := t.TempDir()
	ds, _, err := openStore(dir, testLogger(t), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	st := newRecordStore(ds)
	var batch []pending
	var oldKeys []directory.Hash
	for _, r := range append(recs, forged) {
		v1 := *r
		v1.Version = 1
		h := v1.Hash()
		oldKeys = append(oldKeys, h)
		batch = append(batch, pending{r: &v1, hash: h, epoch: 1, sealed: directory.Seal(&v1, nw.Key)})
	}
	if err := st.putMany(context.Background(), batch); err != nil {
		t.Fatal(err)
	}
	ds.Close()

	n, err := New(t.Context(), testConfig(t, nw, nw.Stewards[0], dir))
	if err != nil {
		t.Fatalf("a store with envelope version 1 from an earlier build of version 2: %v", err)
	}
	if got, want := n.State().Digest(), ref.digest(); got != want {
		t.Fatalf("digest %s after the rewrite, want %s (the records as version 2)", got.Short(), want.Short())
	}
	if len(n.State().Search(directory.Query{Text: "asesoria"})) != 1 || len(n.State().Search(directory.Query{Text: "albergue"})) != 0 {
		t.Fatal("the entry is not searchable, or the forged one is")
	}
	for _, r := range recs {
		if _, err := n.store.ds.Get(context.Background(), recordKey(r.Hash())); err != nil {
			t.Errorf("%s not stored under its version-2 hash: %v", r.Type, err)
		}
	}
	for _, h := range oldKeys {
		if ok, _ := n.store.ds.Has(context.Background(), recordKey(h)); ok {
			t.Errorf("the copy under the version-1 hash %s is still stored", h.Short())
		}
	}
	n.Close()
	again := startNode(t, testConfig(t, nw, nw.Stewards[0], dir))
	if got := again.State().Digest(); got != ref.digest() {
		t.Fatalf("second start: digest %s, want %s", got.Short(), ref.digest().Short())
	}
}
