package node

import (
	"context"
	"sync"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// outQueues follows how many RPCs wait in GossipSub's outbound queue to
// each peer (a RawTracer: queued on SendRPC, gone on SendRPCCompleted), so
// that a node publishing a burst can wait for room instead of overflowing
// them. GossipSub drops what does not fit a peer's queue (32 RPCs), and
// it has no per-topic queue size: a rotation of 190 pages of 64 KiB,
// published as fast as the node could, overflowed every queue of its
// origin, and the pages dropped there reached no node by gossip (issue 14).
type outQueues struct {
	mu    sync.Mutex
	depth map[peer.ID]int
}

func newOutQueues() *outQueues { return &outQueues{depth: map[peer.ID]int{}} }

// deepest is the longest queue, in RPCs.
func (q *outQueues) deepest() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	d := 0
	for _, n := range q.depth {
		d = max(d, n)
	}
	return d
}

// waitRoom returns once every peer's queue holds at most room RPCs, after
// at most wait (a peer that does not read must not hold up the others:
// what it misses, it fetches), or when ctx ends.
func (q *outQueues) waitRoom(ctx context.Context, room int, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for q.deepest() > room && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return ctx.Err()
}

func (q *outQueues) SendRPC(_ *pubsub.RPC, p peer.ID) {
	q.mu.Lock()
	q.depth[p]++
	q.mu.Unlock()
}

func (q *outQueues) SendRPCCompleted(_ *pubsub.RPC, p peer.ID, _ time.Duration) {
	q.mu.Lock()
	// A peer's first RPC goes out without passing the queue: never
	// below zero.
	if q.depth[p] > 1 {
		q.depth[p]--
	} else {
		delete(q.depth, p)
	}
	q.mu.Unlock()
}

func (q *outQueues) RemovePeer(p peer.ID) {
	q.mu.Lock()
	delete(q.depth, p)
	q.mu.Unlock()
}

func (*outQueues) AddPeer(peer.ID, protocol.ID)             {}
func (*outQueues) OnNewOutboundStream(peer.ID, protocol.ID) {}
func (*outQueues) OnClosedOutboundStream(peer.ID)           {}
func (*outQueues) Join(string)                              {}
func (*outQueues) Leave(string)                             {}
func (*outQueues) Graft(peer.ID, string)                    {}
func (*outQueues) Prune(peer.ID, string)                    {}
func (*outQueues) ValidateMessage(*pubsub.Message)          {}
func (*outQueues) DeliverMessage(*pubsub.Message)           {}
func (*outQueues) RejectMessage(*pubsub.Message, string)    {}
func (*outQueues) DuplicateMessage(*pubsub.Message)         {}
func (*outQueues) ThrottlePeer(peer.ID)                     {}
func (*outQueues) RecvRPC(*pubsub.RPC)                      {}
func (*outQueues) DropRPC(*pubsub.RPC, peer.ID)             {}
func (*outQueues) UndeliverableMessage(*pubsub.Message)     {}

var _ pubsub.RawTracer = (*outQueues)(nil)
