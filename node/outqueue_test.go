package node

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestWaitRoomWaitsForQueuesButNotForASlowPeer: the node's bursts (its own
// publications, a rotation's pages) wait for room in the peers' outbound
// queues; a peer whose queue does not drain holds a burst up once, for the
// wait, and not again until its mark runs out or it leaves, and further such
// peers meanwhile only briefly; a peer whose queue drains is waited for each
// time.
func TestWaitRoomWaitsForQueuesButNotForASlowPeer(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	q := newOutQueues()
	stuck, draining := peer.ID("stuck"), peer.ID("draining")
	queue(q, stuck, 40) // over 32, and never drained
	start := time.Now()
	if err := q.waitRoom(ctx, 32, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 20*time.Millisecond {
		t.Fatalf("a full queue held the burst %v, want the whole wait", took)
	}
	// Were the stuck peer waited for again, this would block for an hour
	// (and fail on the context's 30 s), with any room.
	for _, room := range []int{32, 8} {
		if err := q.waitRoom(ctx, room, time.Hour); err != nil {
			t.Fatalf("a peer marked slow still held the burst up (room %d): %v", room, err)
		}
	}
	queue(q, draining, 40)
	drainLater(q, draining, 8, 2*time.Millisecond)
	if err := q.waitRoom(ctx, 32, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := q.over(32, time.Now()); len(got) != 0 {
		t.Fatalf("returned with %v over 32 RPCs besides the slow peer, want none", got)
	}
	// Another peer that does not read, within slowPeerFor of the first:
	// it holds the burst up for afterSlowWait only, however long the wait.
	other := peer.ID("other")
	queue(q, other, 40)
	start = time.Now()
	if err := q.waitRoom(ctx, 32, time.Hour); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < afterSlowWait || took > 10*afterSlowWait {
		t.Fatalf("a second undrained peer held the burst %v, want about %v", took, afterSlowWait)
	}
	q.RemovePeer(other)
	// The marks run out: the stuck peer is waited for again, the whole wait.
	q.mu.Lock()
	q.slow[stuck] = time.Now().Add(-time.Millisecond)
	q.ranOut = time.Time{}
	q.mu.Unlock()
	start = time.Now()
	if err := q.waitRoom(ctx, 32, 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 20*time.Millisecond {
		t.Fatalf("a peer whose slow mark ran out was not waited for (%v)", took)
	}
	// A peer that leaves takes its queue and its mark with it.
	q.RemovePeer(stuck)
	q.mu.Lock()
	_, marked := q.slow[stuck]
	q.mu.Unlock()
	if marked {
		t.Fatal("a peer that left is still marked slow")
	}
	if got := q.over(0, time.Now()); len(got) != 1 || got[0] != draining {
		t.Fatalf("after the stuck peer left: %v over 0, want the draining peer's 32", got)
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
