package node

import (
	"slices"

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
		n.flushBehind()
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
