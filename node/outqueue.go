package node

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// outQueues follows how many RPCs wait in GossipSub's outbound queue to
// each peer (a RawTracer: queued on SendRPC, gone on SendRPCCompleted), so
// that a node publishing a burst can wait for room instead of overflowing
// them. GossipSub drops what does not fit a peer's queue (outboundQueue
// RPCs), and it has no per-topic queue size: a rotation of 190 pages of
// 64 KiB, published as fast as the node could, overflowed every queue of
// its origin, and the pages dropped there reached no node by gossip (issue
// 14).
type outQueues struct {
	mu    sync.Mutex
	depth map[peer.ID]int
	// slow holds, until when, the peers not waited for, and ranOut when
	// a wait last ran out (waitRoom).
	slow   map[peer.ID]time.Time
	ranOut time.Time
	// dropped counts the RPCs GossipSub dropped because a peer's outbound
	// queue was full, and validateFull the messages it dropped because
	// its validation queue was: both lose a record to gossip, and leave
	// it to sync.
	dropped, validateFull atomic.Int64
}

func newOutQueues() *outQueues {
	return &outQueues{depth: map[peer.ID]int{}, slow: map[peer.ID]time.Time{}}
}

// A burst of the node's own publications (an import, an organization
// entering its directory) waits for room in the queues too: before it is
// gossiped, each record waits until no peer's queue holds more than
// ownQueueRoom RPCs, at most ownQueueWait. Without it, 300 entries
// published in a loop on a loaded machine overflowed every queue of the
// publisher: 16 consecutive records reached no node by gossip
// (TestBurstOfPublicationsArrivesByGossip), and waited for sync. A
// rotation's pages, which are large, wait for more room first
// (rotationQueueRoom).
const (
	ownQueueRoom = outboundQueue / 2
	ownQueueWait = 5 * time.Second
	// slowPeerFor is how long a peer whose queue did not drain within a
	// wait is not waited for again: a peer that does not read holds a burst
	// up once, not at every record.
	slowPeerFor = 30 * time.Second
	// afterSlowWait is how long a wait lasts at most within slowPeerFor of
	// one that ran out: a wait is held up by its whole length once per
	// slowPeerFor, whatever the peers. Otherwise an insider with several
	// admitted devices, each connected and not reading, could stagger them
	// so that every record of a burst waited the whole ownQueueWait.
	afterSlowWait = 200 * time.Millisecond
)

// waitRoom returns once no peer's queue holds more than room RPCs, but for
// the peers marked slow, or when ctx ends. It waits at most wait, or
// afterSlowWait within slowPeerFor of a wait that ran out: the peers still
// over room then are marked slow for slowPeerFor (what they miss, sync or
// the page fetch brings them).
func (q *outQueues) waitRoom(ctx context.Context, room int, wait time.Duration) error {
	start := time.Now()
	q.mu.Lock()
	if start.Sub(q.ranOut) < slowPeerFor {
		wait = min(wait, afterSlowWait)
	}
	q.mu.Unlock()
	deadline := start.Add(wait)
	for {
		now := time.Now()
		over := q.over(room, now)
		if len(over) == 0 {
			return ctx.Err()
		}
		if !now.Before(deadline) {
			q.mu.Lock()
			for _, p := range over {
				q.slow[p] = now.Add(slowPeerFor)
			}
			q.ranOut = now
			q.mu.Unlock()
			return ctx.Err()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// over lists the peers whose queue holds more than room RPCs, but for those
// marked slow until after now.
func (q *outQueues) over(room int, now time.Time) []peer.ID {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []peer.ID
	for p, n := range q.depth {
		if n <= room {
			continue
		}
		if until, ok := q.slow[p]; ok {
			if now.Before(until) {
				continue
			}
			delete(q.slow, p)
		}
		out = append(out, p)
	}
	return out
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
	delete(q.slow, p)
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
func (q *outQueues) RejectMessage(_ *pubsub.Message, reason string) {
	if reason == pubsub.RejectValidationQueueFull {
		q.validateFull.Add(1)
	}
}
func (*outQueues) DuplicateMessage(*pubsub.Message)     {}
func (*outQueues) ThrottlePeer(peer.ID)                 {}
func (*outQueues) RecvRPC(*pubsub.RPC)                  {}
func (q *outQueues) DropRPC(*pubsub.RPC, peer.ID)       { q.dropped.Add(1) }
func (*outQueues) UndeliverableMessage(*pubsub.Message) {}

var _ pubsub.RawTracer = (*outQueues)(nil)
