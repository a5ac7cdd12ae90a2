package daemon

import (
	"context"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	"github.com/ceiba-network/ceiba/node/api"
)

// A version the organization publishes never expires before the one it
// replaces, and its deletion outlives every version it published: else a
// node that kept an older version shows it again once the newer one
// expires (see node.TestReplacedEntryDoesNotComeBackAfterAShorterUpdate).
func TestNewVersionsOutliveTheVersionsTheyReplace(t *testing.T) {
	ctx := context.Background()
	steward := startTestDaemon(t, "steward")
	if _, err := steward.CreateNetwork(ctx, api.NetworkRequest{Name: "Red", Threshold: 1}); err != nil {
		t.Fatal(err)
	}
	inv, err := steward.CreateInvite(api.InviteRequest{Role: "member", Expires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	org := startTestDaemon(t, "org")
	if _, err := org.AcceptInvite(ctx, api.AcceptRequest{Code: inv.Code, Name: "Casa Refugio"}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); !org.isMember(org.Node().State()); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the organization's node never saw its own admission")
		}
	}
	svc := dirtest.SampleEntry("refugio", 1, time.Now()).Service
	v1, err := org.Publish(ctx, api.PublishRequest{ID: "refugio", Service: svc, ExpiresInDays: 90})
	if err != nil {
		t.Fatal(err)
	}
	closed := *svc
	closed.Status = "temporarily-closed"
	v2, err := org.Publish(ctx, api.PublishRequest{ID: "refugio", Service: &closed, ExpiresInDays: 1})
	if err != nil {
		t.Fatal(err)
	}
	if v2.Seq != 2 || v2.Expires.Before(v1.Expires) {
		t.Fatalf("an update asked to expire in a day: seq %d expires %s, before the version it replaces (%s)", v2.Seq, v2.Expires, v1.Expires)
	}
	// Asking for longer than the current version still gets it.
	v3, err := org.Publish(ctx, api.PublishRequest{ID: "refugio", Service: svc, ExpiresInDays: 120})
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Now().Add(119 * 24 * time.Hour); v3.Expires.Before(want) {
		t.Fatalf("an update asked to expire in 120 days expires %s", v3.Expires)
	}

	gone, err := org.Remove(ctx, "refugio")
	if err != nil {
		t.Fatal(err)
	}
	life := directory.Policy{}.MaxEntryLife()
	if !gone.Deleted || gone.Expires.Sub(gone.Issued) < life {
		t.Fatalf("the deletion lives %s; a version issued before it may live %s", gone.Expires.Sub(gone.Issued), life)
	}
}
