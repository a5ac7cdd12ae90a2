package node

import (
	"slices"
	"time"

	"github.com/ceiba-network/ceiba/directory"
)

// A record taken by gossip is applied before its message is let on, and
// written to disk after, behind the validator: the durable write (a put
// and an fsync, 0.4 ms on the development machine's disk and far more on
// an SD card or a small VPS's) was on every hop's path, between a node
// receiving a record and handing it on. Nothing is acknowledged for a
// record taken by gossip (its publisher's node acknowledged it), so a
// crash before the write loses only this node's copy, which sync brings
// back from its peers. Meanwhile the node counts the write as in flight,
// so the records the state let go of for it stay on disk until it is
// there (inflight, orphans). Subscribers hear of the record as soon as
// the state took it, when it is searchable. Writes that queue up while
// one is under way go together in one batch with one fsync.
//
// The writer waits writeBehindPause after the first record of a batch
// arrives before writing: records come in bursts (a rotation's pages, an
// import, one record from each of several peers), and a write started at
// the first one would compete for the CPU with validating and forwarding
// the rest. On one core an fsync's system time is the forwarding's loss.
// In the simulator, where every node's writes and forwarding share two
// cores, writes begun mid-propagation made an entry 2.0 to 2.7 times as
// slow to reach every node as bare GossipSub, a revocation 2.8 to 3.2
// times; after the pause, 1.0 to 1.6 and 1.8 to 2.5 times
// (BenchmarkGossipOnDisk, PERFORMANCE.md).

// writeBehindPause is how long the writer lets a burst gather; it adds
// that much to the window in which a crash loses this node's copy of a
// gossiped record (which sync brings back), nothing to anything
// acknowledged.
const writeBehindPause = 50 * time.Millisecond

// writeBehind is one record waiting for its write.
type writeBehind struct {
	p       pending
	dropped []directory.Hash // what the state let go of for it
	done    func()           // ends its inflight count
}

// writeBehind queues w for the writer.
func (n *Node) writeBehind(w writeBehind) {
	n.mu.Lock()
	n.behind = append(n.behind, w)
	n.mu.Unlock()
	select {
	case n.behindKick <- struct{}{}:
	default:
	}
}

// behindLoop writes queued records until the node closes; Close writes
// what is left after it.
func (n *Node) behindLoop() {
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-n.behindKick:
		}
		pause := time.NewTimer(writeBehindPause)
		select {
		case <-n.ctx.Done():
			pause.Stop()
			return // Close writes what is queued
		case <-pause.C:
		}
		n.flushBehind()
		// The search index takes the records let on meanwhile, in one
		// batch, off their path to the next hop (State.FlushIndex); a
		// search before this takes them itself.
		n.state.FlushIndex()
	}
}

// flushBehind writes every queued record, in batches.
func (n *Node) flushBehind() {
	for {
		n.mu.Lock()
		ws := n.behind
		n.behind = nil
		n.mu.Unlock()
		if len(ws) == 0 {
			return
		}
		batch := make([]pending, len(ws))
		var dropped []directory.Hash
		for i, w := range ws {
			batch[i] = w.p
			dropped = append(dropped, w.dropped...)
		}
		if err := n.persist(batch); err != nil {
			// Left in unpersisted for retryPersist, as for any write
			// the store refused; what they superseded stays on disk.
			n.log.Error("records taken by gossip not stored; will retry", "count", len(batch), "err", err)
			n.retire(dropped)
		} else {
			n.drop(dropped)
			n.mu.Lock()
			n.accepted[ViaGossip] += len(ws)
			n.mu.Unlock()
			// A key dropped (pruneKeys) while these waited was not
			// there for its reseal pass to see them: they would not
			// open at the next start.
			kr := n.keyringSnapshot()
			if slices.ContainsFunc(batch, func(p pending) bool { _, ok := kr[p.epoch]; return !ok }) {
				n.resealUnheld()
			}
		}
		for _, w := range ws {
			w.done()
		}
	}
}
