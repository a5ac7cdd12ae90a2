package node

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestRotationWaitsForQueuesButNotForAStuckPeer: publishing a rotation
// waits for room in the peers' outbound queues; a peer whose queue does
// not drain holds it up once, for the wait, and never again, while a peer
// whose queue drains is waited for each time.
func TestRotationWaitsForQueuesButNotForAStuckPeer(t *testing.T) {
	q := newOutQueues()
	stuck, slow := peer.ID("stuck"), peer.ID("slow")
	queue(q, stuck, 20)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	skip := map[peer.ID]bool{}
	if err := q.waitRoom(ctx, 8, 10*time.Millisecond, skip); err != nil || !skip[stuck] {
		t.Fatalf("after the wait: err %v, stuck peers %v; want the undrained peer noted", err, skip)
	}
	// Were it waited for again, this would block for an hour (and fail
	// on the context's 30 s).
	if err := q.waitRoom(ctx, 8, time.Hour, skip); err != nil {
		t.Fatalf("a peer noted stuck still held the publisher up: %v", err)
	}
	queue(q, slow, 12)
	drainLater(q, slow, 4, 5*time.Millisecond)
	if err := q.waitRoom(ctx, 8, time.Hour, skip); err != nil || skip[slow] {
		t.Fatalf("waiting for a draining queue: err %v, stuck %v", err, skip)
	}
	if got := q.over(8, nil); len(got) != 1 || got[0] != stuck {
		t.Fatalf("queues over 8 RPCs: %v, want only the stuck peer's", got)
	}
	q.RemovePeer(stuck)
	if got := q.over(0, nil); len(got) != 1 || got[0] != slow {
		t.Fatalf("after the stuck peer left: %v over 0, want the slow peer's 8", got)
	}
}

// TestOwnBurstWaitsForQueuesButNotForASlowPeer: before each record of its
// own, the node waits for room in its peers' outbound queues; a peer whose
// queue does not drain holds the burst up once, for the wait, and not again
// until its mark runs out or it leaves.
func TestOwnBurstWaitsForQueuesButNotForASlowPeer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q := newOutQueues()
	stuck, draining := peer.ID("stuck"), peer.ID("draining")
	queue(q, stuck, 40) // over 32, and never drained
	start := time.Now()
	if err := q.paceOwn(ctx, 32, 20*time.Millisecond, time.Hour); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 20*time.Millisecond {
		t.Fatalf("a full queue held the publication %v, want the whole wait", took)
	}
	// Were the stuck peer waited for again, this would block for an hour
	// (and fail on the context's 30 s).
	if err := q.paceOwn(ctx, 32, time.Hour, time.Hour); err != nil {
		t.Fatalf("a peer marked slow still held the publication up: %v", err)
	}
	queue(q, draining, 40)
	drainLater(q, draining, 8, 2*time.Millisecond)
	if err := q.paceOwn(ctx, 32, time.Hour, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := q.overBesidesSlow(32, time.Now()); len(got) != 0 {
		t.Fatalf("returned with %v over 32 RPCs besides the slow peer, want none", got)
	}
	// The mark runs out: the stuck peer is waited for again.
	q.mu.Lock()
	q.slow[stuck] = time.Now().Add(-time.Millisecond)
	q.mu.Unlock()
	start = time.Now()
	if err := q.paceOwn(ctx, 32, 20*time.Millisecond, time.Hour); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 20*time.Millisecond {
		t.Fatalf("a peer whose slow mark ran out was not waited for (%v)", took)
	}
	// A peer that leaves takes its mark with it.
	q.RemovePeer(stuck)
	q.mu.Lock()
	_, marked := q.slow[stuck]
	q.mu.Unlock()
	if marked {
		t.Fatal("a peer that left is still marked slow")
	}
}

// queue puts n RPCs in p's outbound queue.
func queue(q *outQueues, p peer.ID, n int) {
	for range n {
		q.SendRPC(nil, p)
	}
}

// drainLater sends n of p's queued RPCs, one every interval, in the
// background.
func drainLater(q *outQueues, p peer.ID, n int, every time.Duration) {
	go func() {
		for range n {
			time.Sleep(every)
			q.SendRPCCompleted(nil, p, 0)
		}
	}()
}
