package node

import (
	"sync"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ceiba-network/ceiba/directory"
)

// Records the state refuses for a reason that passes once the node knows
// more (entries over the pending quota of a key whose membership has not
// arrived, a self-revocation of a key not heard of yet, a proposal citing a
// charter ahead of ours) are parked in memory and applied again as soon as
// governance changes: a node catching up on a large organization gets its
// entries before the membership often enough, and fetching them again
// would cost a metered link twice. The lot is bounded, oldest out first,
// and nothing parked is stored, gossiped or offered to peers.
const (
	parkedMaxRecords = 4096
	parkedMaxBytes   = 16 << 20
)

type parkedRecord struct {
	r    *directory.Record
	from peer.ID
	via  Via
	size int
}

type parking struct {
	mu    sync.Mutex
	order []directory.Hash
	recs  map[directory.Hash]parkedRecord
	bytes int
}

// mayPass reports whether a refusal may pass without the record changing.
func mayPass(err error) bool {
	return directory.MayPass(err)
}

func (p *parking) park(r *directory.Record, from peer.ID, via Via) {
	h := r.Hash()
	size := len(r.Body)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.recs == nil {
		p.recs = map[directory.Hash]parkedRecord{}
	}
	if _, ok := p.recs[h]; ok || size > parkedMaxBytes {
		return
	}
	for len(p.order) > 0 && (len(p.recs) >= parkedMaxRecords || p.bytes+size > parkedMaxBytes) {
		old := p.order[0]
		p.order = p.order[1:]
		p.bytes -= p.recs[old].size
		delete(p.recs, old)
	}
	p.recs[h] = parkedRecord{r: r, from: from, via: via, size: size}
	p.order = append(p.order, h)
	p.bytes += size
}

// take empties the lot, oldest first.
func (p *parking) take() []parkedRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]parkedRecord, 0, len(p.order))
	for _, h := range p.order {
		out = append(out, p.recs[h])
	}
	p.order, p.recs, p.bytes = nil, nil, 0
	return out
}

// has reports whether the record with hash h is parked: sync need not
// fetch it again.
func (p *parking) has(h directory.Hash) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.recs[h]
	return ok
}

func (p *parking) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.recs)
}

// retryParked applies the parked records again after governance changed;
// those still refused for a passing reason are parked again.
func (n *Node) retryParked() {
	lot := n.parked.take()
	if len(lot) == 0 {
		return
	}
	byVia := map[Via][]*directory.Record{}
	for _, pr := range lot {
		byVia[pr.via] = append(byVia[pr.via], pr.r)
	}
	for via, recs := range byVia {
		if _, err := n.acceptBatch(recs, "", via); err != nil {
			n.log.Warn("parked records not stored", "count", len(recs), "err", err)
		}
	}
}

// heartbeats returns the parked heartbeats: those citing a charter
// version this node lacks still say it lacks one (Node.HeartbeatFreshness).
func (p *parking) heartbeats() []*directory.Record {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []*directory.Record
	for _, pr := range p.recs {
		if pr.r.Type == directory.TypeHeartbeat {
			out = append(out, pr.r)
		}
	}
	return out
}

// HeartbeatFreshness is what the stewards' heartbeats say about this
// node's copy: those the state holds, and those parked because they cite
// a charter version this node lacks (an amendment withheld shows as
// behind: directory.State.HeartbeatFreshnessWith).
func (n *Node) HeartbeatFreshness() directory.Freshness {
	return n.state.HeartbeatFreshnessWith(n.parked.heartbeats())
}
