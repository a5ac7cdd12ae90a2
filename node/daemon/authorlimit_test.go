package daemon

import (
	"context"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/api"
)

// Stewards change the per-author limits by charter amendment; values out
// of range are refused with the charter's reason and change nothing.
func TestProposeCharterSetsAuthorLimits(t *testing.T) {
	ctx := context.Background()
	d := startTestDaemon(t, "steward")
	if _, err := d.CreateNetwork(ctx, api.NetworkRequest{Name: "Red", Threshold: 1}); err != nil {
		t.Fatal(err)
	}
	st := d.Node().State()
	if _, err := d.Propose(ctx, api.ProposeRequest{Kind: "charter", MaxAuthorBytes: 100}); err == nil {
		t.Fatal("a byte limit of 100 was accepted")
	}
	if v := st.Charter().Version; v != 1 {
		t.Fatalf("a refused amendment left charter version %d", v)
	}
	if _, err := d.Propose(ctx, api.ProposeRequest{Kind: "charter", MaxAuthorEntries: 5, MaxAuthorUpdatesPerHour: 600}); err != nil {
		t.Fatal(err)
	}
	p := st.Charter().Policy
	if p.MaxAuthorLiveEntries() != 5 || p.MaxAuthorUpdates() != 600 || p.MaxAuthorLiveBytes() != directory.DefaultMaxAuthorBytes {
		t.Fatalf("policy after the amendment: %+v", p)
	}
}
