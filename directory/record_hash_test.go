package directory_test

import (
	"crypto/sha256"
	"strings"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A record's hash is remembered (a rotation page is hashed many times on
// its way in, and every entry once more as it is applied), but the
// record's fields are exported: a decoded record changed afterwards, in
// place or by AddSignature, must hash as what it now is, and the state
// must verify it afresh instead of trusting what was checked when it was
// decoded. A cache that missed a change would let a tampered record in
// under the signatures of the original. Small records are remembered from
// their verification only, large ones from any hashing too.
func TestRecordHashFollowsChanges(t *testing.T) {
	for _, size := range []struct {
		name string
		desc string
	}{{"small", "Asesoría legal gratuita."}, {"large", strings.Repeat("€", 4000)}} {
		t.Run(size.name, func(t *testing.T) { testRecordHashFollowsChanges(t, size.desc) })
	}
}

func testRecordHashFollowsChanges(t *testing.T, desc string) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	e := dirtest.SampleEntry("grande", 1, nw.Now)
	e.Service.Description = desc
	orig := nw.Sign(t, e, org)
	if len(desc) > 1000 && len(orig.Body) < 8<<10 {
		t.Fatalf("a body of %d bytes is too small to be cached: the test shows nothing", len(orig.Body))
	}
	fresh := func() *directory.Record {
		r := decoded(t, orig)
		if h := r.Hash(); h != sha256.Sum256(orig.Encode()) {
			t.Fatal("a decoded record does not hash as its encoding")
		}
		return r
	}
	check := func(what string, r *directory.Record) {
		t.Helper()
		if got, want := r.Hash(), directory.Hash(sha256.Sum256(r.Encode())); got != want || got == orig.Hash() {
			t.Fatalf("%s: hash %s, want %s (the original's is %s)", what, got.Short(), want.Short(), orig.Hash().Short())
		}
	}

	r := fresh()
	r.Body[len(r.Body)/2] ^= 1
	check("a body byte changed in place", r)
	s := nw.State()
	mustApply(t, s, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"))
	if _, err := s.Apply(r); err == nil {
		t.Fatal("the state took a decoded record whose body was changed after decoding")
	}

	r = fresh()
	other := []byte(string(r.Body)) // the cache keeps no copy: a new slice of equal length
	other[0] ^= 1
	r.Body = other
	check("the body replaced by another of the same length", r)

	r = fresh()
	r.Sigs[0].Sig[0] ^= 1
	check("a signature byte changed in place", r)
	if _, err := s.Apply(r); err == nil {
		t.Fatal("the state took a decoded record whose signature was changed after decoding")
	}

	r = fresh()
	r.AddSignature(dirtest.MustIdentity(t))
	check("a signature added", r)

	r = fresh()
	r.Network[0] ^= 1
	check("the network changed", r)

	r = fresh()
	if _, err := s.Apply(r); err != nil {
		t.Fatalf("the unchanged record: %v", err)
	}
}
