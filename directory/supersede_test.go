package directory_test

import (
	"slices"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// A new version expires no sooner than the one it replaces, but no later
// than the charter's lifetime from its issue date: after an amendment
// lowered the lifetime below what the current version was given, keeping
// that version's expiry would make every update of the entry one no node
// shows.
func TestSupersedingExpiryStaysWithinTheLifetime(t *testing.T) {
	day := 24 * time.Hour
	nw := dirtest.New(t, 3, 2)
	org := dirtest.MustIdentity(t)
	policy := directory.Policy{MaxEntryLifetime: uint32(30 * day / time.Second)}
	v2c, err := directory.Amend(nw.Charter, nw.Genesis.ProposalID(), nw.Charter.Stewards, 2, policy, nw.Now)
	if err != nil {
		t.Fatal(err)
	}
	v1 := dirtest.SampleEntry("asesoria", 1, nw.Now) // 90 days, issued under the genesis
	at := nw.Now
	v2 := dirtest.SampleEntry("asesoria", 2, at)
	v2.Expires = directory.SupersedingExpiry(v1, at, at.Add(7*day).Unix(), policy)
	if want := at.Add(30 * day).Unix(); v2.Expires != want {
		t.Fatalf("an update asked for 7 days after a 90-day version under a 30-day charter expires %s, want %s",
			time.Unix(v2.Expires, 0).UTC(), time.Unix(want, 0).UTC())
	}
	s := nw.State()
	mustApply(t, s, nw.Genesis, nw.Admit(t, org, "Colectivo Ejemplo"), nw.Sign(t, v1, org), nw.Sign(t, v2c, nw.Stewards[:2]...), nw.Sign(t, v2, org))
	if got := visibleIDs(s); !slices.Equal(got, []string{"asesoria"}) {
		t.Fatalf("the update is not shown: %v", got)
	}
	if gone := directory.Tombstone(v2, at, policy); gone.Expires != v2.Expires || !gone.Deleted || gone.Seq != 3 {
		t.Fatalf("the tombstone of v2 under a 30-day charter: %+v", gone)
	}
}
