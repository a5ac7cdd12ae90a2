package directory_test

import (
	"errors"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

func mustApply(t *testing.T, s *directory.State, recs ...*directory.Record) {
	t.Helper()
	for _, r := range recs {
		if _, err := s.Apply(r); err != nil {
			t.Fatalf("apply %s: %v", r.Type, err)
		}
	}
}

func TestPublishSearchRevoke(t *testing.T) {
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	s := nw.State()
	mustApply(t, s, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"), nw.Entry(t, org, "asesoria", 1))

	res := s.Search(directory.Query{Text: "asesoria juridica"})
	if len(res) != 1 || res[0].Entry.ID != "asesoria" {
		t.Fatalf("search after publish = %+v, want the entry", res)
	}
	mustApply(t, s, nw.RevokeBy(t, org.Public()))
	if res := s.Search(directory.Query{Text: "asesoria"}); len(res) != 0 {
		t.Fatalf("search after revocation = %d results, want none", len(res))
	}
	_, err := s.Apply(nw.Entry(t, org, "otra", 1))
	if !errors.Is(err, directory.ErrRevoked) {
		t.Fatalf("entry from revoked key: err = %v, want ErrRevoked", err)
	}
}
