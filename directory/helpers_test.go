package directory_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// approval returns steward's approval of proposal p as a record of its own.
func approval(t testing.TB, p *directory.Record, steward *directory.Identity) *directory.Record {
	t.Helper()
	a, err := directory.NewApproval(p, steward)
	if err != nil {
		t.Fatalf("approval of %s: %v", p.Type, err)
	}
	return a
}

// unsigned is a record of body with no signature yet: the carrier that
// approvals are made from when the proposal itself never travels.
func unsigned(t testing.TB, nw *dirtest.Network, body directory.Body) *directory.Record {
	t.Helper()
	r, err := directory.NewRecord(nw.ID, body)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// decoded returns an independent copy of r as a peer would receive it.
func decoded(t testing.TB, r *directory.Record) *directory.Record {
	t.Helper()
	c, err := directory.DecodeRecord(r.Encode())
	if err != nil {
		t.Fatalf("decoding a valid %s record: %v", r.Type, err)
	}
	return c
}

// wantReject fails unless err is a *RejectError for reason.
func wantReject(t testing.TB, err, reason error) {
	t.Helper()
	if !errors.Is(err, reason) {
		t.Fatalf("err = %v, want %v", err, reason)
	}
	var re *directory.RejectError
	if !errors.As(err, &re) {
		t.Fatalf("err = %T %v, want a *RejectError", err, err)
	}
	// What a person reads: the reason once ("encoding is not canonical:
	// encoding is not canonical" said nothing more), and a record whose
	// type could not be read named as such, not "type(0)".
	msg := err.Error()
	if n := strings.Count(msg, reason.Error()); n != 1 {
		t.Fatalf("error %q says %q %d times, want once", msg, reason.Error(), n)
	}
	if strings.Contains(msg, "type(0)") {
		t.Fatalf("error %q names a type the record does not have", msg)
	}
}

func charterVersion(s *directory.State) uint64 {
	if c := s.Charter(); c != nil {
		return c.Version
	}
	return 0
}

func visible(s *directory.State) int { return len(s.Search(directory.Query{})) }
