package daemon

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node"
)

// approveFirstEpoch is what a steward's node does on its own when it joins
// a new network: the first read key was made by the steward who created
// the network, and like every epoch it takes effect only with Threshold
// stewards' approvals. A co-steward approves it once it has checked that
// its own package opens to the key the epoch commits to and that this is
// the key it was handed when it joined; anything else is left for the
// stewards to look at.
func (d *Daemon) approveFirstEpoch(n *node.Node) {
	st := n.State()
	me := d.me()
	c := st.Charter()
	if c == nil || st.CurrentEpoch() > 0 || !slices.Contains(c.StewardKeys(), me.Public()) || st.IsRevoked(me.Public()) {
		return
	}
	for _, p := range st.Proposals() {
		e, ok := p.Body.(*directory.Epoch)
		if !ok || p.Effective || e.Number != 1 || slices.Contains(p.Approvers, me.Public()) {
			continue
		}
		key, err := directory.OpenKeyPackage(me, st.Network(), e, st.EpochPages(e))
		if err != nil {
			if errors.Is(err, directory.ErrKeyMismatch) {
				d.log.Error("the first epoch seals this steward a key other than the one it commits to; not approving it", "proposal", p.ID.Short())
			}
			continue
		}
		if held, ok := n.Keyring()[1]; !ok || held != key {
			// Only the first epoch whose key this node was handed when
			// it joined: a competing one, made by another steward while
			// the network starts, waits for a deliberate approval.
			continue
		}
		r, err := directory.NewApproval(&directory.Record{Version: directory.FormatVersion, Type: p.Type, Network: st.Network(), Body: p.Raw}, me)
		if err != nil {
			d.log.Error("approving the first epoch", "err", err)
			continue
		}
		ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
		_, err = n.Publish(ctx, r)
		cancel()
		if err != nil {
			d.log.Error("publishing the approval of the first epoch", "err", err)
			continue
		}
		d.log.Info("approved the network's first read key", "proposal", p.ID.Short())
	}
}
