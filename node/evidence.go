package node

import (
	"errors"

	"github.com/ceiba-network/ceiba/directory"
)

// reportEquivocation publishes, signed by this node's key, durable
// evidence of each equivocation among recs (what evidenceOf gathered: the
// record that revealed it and the versions it displaced) and the pooled
// version each conflicts with. Unlike the gossip of the two versions,
// evidence is pooled, stored, synced, resealed after a rotation and put
// in the DHT, so the report survives restarts and reaches nodes that were
// offline (directory.Evidence). The network keeps one piece per
// equivocating key (the lowest record hash): a node that holds evidence
// against a key reports none of its further conflicts. A fork of the
// charter or of epochs among what the state now holds is reported as well,
// one piece per fork point (directory.State.ForkEvidence).
func (n *Node) reportEquivocation(recs []*directory.Record) {
	var pairs [][2]*directory.Record
	for i, a := range recs {
		if a.Type != directory.TypeEntry && a.Type != directory.TypeReader {
			continue
		}
		if c, ok := n.state.Conflicting(a); ok {
			pairs = append(pairs, [2]*directory.Record{a, c})
		}
		for _, b := range recs[i+1:] {
			if b.Type == a.Type {
				pairs = append(pairs, [2]*directory.Record{a, b})
			}
		}
	}
	forks := n.state.ForkEvidence(n.id)
	if len(pairs) == 0 && len(forks) == 0 {
		return
	}
	n.wg.Go(func() {
		for _, ev := range forks {
			n.publishEvidence(ev)
		}
		for _, p := range pairs {
			if k, _ := directory.Equivocator(p[0]); n.state.HasEvidenceAgainst(k) {
				continue // one piece per equivocating key is all the network keeps
			}
			ev, err := directory.NewEvidence(p[0], p[1], n.id)
			if err != nil {
				continue // not a conflict (an older seq it superseded, grants naming one KEM key)
			}
			n.publishEvidence(ev)
		}
	})
}

// publishEvidence publishes ev; another node's evidence of the same
// conflict may have come first (duplicate, or held already).
func (n *Node) publishEvidence(ev *directory.Record) {
	if _, err := n.Publish(n.ctx, ev); err != nil && !errors.Is(err, directory.ErrDuplicate) && !errors.Is(err, directory.ErrStale) {
		n.log.Warn("equivocation evidence not published", "err", err)
	}
}
