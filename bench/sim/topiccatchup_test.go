package sim

import (
	"context"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
)

// TestCatchUpAfterJoiningNewTopics: rotations one right after another on
// 30 simulated nodes, with the periodic sync an hour apart so that it
// cannot cover for gossip. A node that joins a new key's topics a moment
// before the next rotation reaches its peers is neither forwarded the
// pages (it is not in their mesh yet) nor told of them (it is in their
// mesh by the next heartbeat, and GossipSub announces only to peers
// outside it), and it holds no page that would make it ask for the
// rest. Before the node synced with peers on the topics it had just
// joined, about one run in four left such a node without the new key
// until its periodic sync (7 to 29 s at 30 s; here, never within the
// minute); now it has it within a few seconds.
func TestCatchUpAfterJoiningNewTopics(t *testing.T) {
	if testing.Short() {
		t.Skip("30 nodes, ten rotations")
	}
	ctx := context.Background()
	nw, err := New(ctx, Config{N: 30, Latency: 20 * time.Millisecond, Orgs: 1, Seed: 100, SyncInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer nw.Close()
	if err := nw.FirstEpoch(ctx); err != nil {
		t.Fatal(err)
	}
	var extra []directory.Recipient
	for number := uint64(2); number < 12; number++ {
		rot, more, err := nw.PrepareRotation(number, 100, extra)
		if err != nil {
			t.Fatal(err)
		}
		extra = more
		origin := nw.RandomNode()
		d, err := nw.DeliverRotation(ctx, origin, number, rot, time.Minute)
		if err != nil {
			t.Fatalf("rotation to epoch %d from node %d: %v", number, origin, err)
		}
		slowest, at := 0, time.Duration(0)
		for i, h := range d.Held {
			if h > at {
				slowest, at = i, h
			}
		}
		t.Logf("epoch %d: every node held the key after %v (slowest node %d: %d pages by gossip, %d by sync)", number, at.Round(time.Millisecond), slowest, d.PagesGossip[slowest], d.PagesSync[slowest])
	}
}
