package sim

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/ceiba-network/ceiba/directory"
)

// Rotation is a prepared read-key rotation (issue 14): the new key sealed
// to every node's identity and to extra recipients that run no node, so a
// network of a few dozen nodes carries a rotation of thousands.
type Rotation struct {
	Key        directory.ReadKey
	Records    []*directory.Record // the epoch record, then its pages
	Recipients int
	Pages      int
	Seal       time.Duration // wall time of directory.NewEpoch
	WireBytes  int           // one sealed copy of every record
}

// FirstEpoch publishes epoch 1, approved by the threshold and sealed to
// the stewards, and waits for every node to take it: a rotation to epoch
// 2 needs an effective epoch 1. Every node already holds its key. Nodes
// that are neither stewards nor organizations are admitted as readers of
// the first organization first: a rotation is sealed to readers, and only
// admitted keys may sync, which is how a node fetches the pages gossip
// dropped.
func (nw *Network) FirstEpoch(ctx context.Context) error {
	if len(nw.Orgs) == 0 {
		return fmt.Errorf("sim: a rotation needs an organization to vouch for readers")
	}
	for _, p := range nw.Nodes[stewards+len(nw.Orgs):] {
		g, err := directory.NewRecord(nw.Fix.Net, &directory.Reader{Key: p.ID.Public(), KEM: p.ID.KEMPublic(), KEMSig: p.ID.KEMBinding(), Issued: nw.Fix.Now.Unix()}, nw.Orgs[0])
		if err != nil {
			return err
		}
		if _, err := nw.Publish(ctx, stewards, g, time.Minute); err != nil {
			return err
		}
	}
	var rs []directory.Recipient
	for _, s := range nw.Fix.Stewards {
		rs = append(rs, directory.Recipient{Key: s.Public(), KEM: s.KEMPublic()})
	}
	e, pages, err := directory.NewEpoch(nw.Fix.Net, 1, 1, directory.Hash{}, nw.Fix.Key, rs, nw.Fix.Now, directory.DefaultMaxRecordBytes)
	if err != nil {
		return err
	}
	recs, err := nw.signRotation(e, pages)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if _, err := nw.Publish(ctx, 0, r, time.Minute); err != nil {
			return err
		}
	}
	return nil
}

func (nw *Network) signRotation(e *directory.Epoch, pages []*directory.EpochPage) ([]*directory.Record, error) {
	r, err := directory.NewRecord(nw.Fix.Net, e, nw.Fix.Stewards[:nw.Fix.Threshold]...)
	if err != nil {
		return nil, err
	}
	recs := []*directory.Record{r}
	for _, pg := range pages {
		pr, err := directory.NewRecord(nw.Fix.Net, pg, nw.Fix.Stewards[0])
		if err != nil {
			return nil, err
		}
		recs = append(recs, pr)
	}
	return recs, nil
}

// PrepareRotation seals epoch number to every node and to extra made-up
// recipients, up to recipients in all, approved by the threshold of
// stewards. Making the extra identities is not timed; sealing is.
func (nw *Network) PrepareRotation(number uint64, recipients int, extra []directory.Recipient) (*Rotation, []directory.Recipient, error) {
	var rs []directory.Recipient
	for _, p := range nw.Nodes {
		rs = append(rs, directory.Recipient{Key: p.ID.Public(), KEM: p.ID.KEMPublic()})
	}
	for len(extra) < recipients-len(rs) {
		id, err := directory.NewIdentity()
		if err != nil {
			return nil, nil, err
		}
		extra = append(extra, directory.Recipient{Key: id.Public(), KEM: id.KEMPublic()})
	}
	rs = append(rs, extra[:max(0, recipients-len(rs))]...)
	rot := &Rotation{Key: directory.NewReadKey(), Recipients: len(rs)}
	start := time.Now()
	e, pages, err := directory.NewEpoch(nw.Fix.Net, number, 1, directory.Hash{}, rot.Key, rs, nw.Fix.Now, directory.DefaultMaxRecordBytes)
	if err != nil {
		return nil, nil, err
	}
	rot.Seal = time.Since(start)
	rot.Pages = len(pages)
	if rot.Records, err = nw.signRotation(e, pages); err != nil {
		return nil, nil, err
	}
	for _, r := range rot.Records {
		rot.WireBytes += nw.SealedSize(r)
	}
	return rot, extra, nil
}

// DeliverRotation publishes the rotation's records on node origin and
// returns how long after the first publish each node held the new key,
// in node order; a node that did not within timeout is an error.
func (nw *Network) DeliverRotation(ctx context.Context, origin int, number uint64, rot *Rotation, timeout time.Duration) ([]time.Duration, error) {
	start := time.Now()
	if err := nw.Nodes[origin].Node.PublishRotationRecords(ctx, rot.Records); err != nil {
		return nil, fmt.Errorf("sim: node %d: %w", origin, err)
	}
	got := make([]time.Duration, len(nw.Nodes))
	deadline := start.Add(timeout)
	for left := len(nw.Nodes); left > 0; {
		for i, p := range nw.Nodes {
			if got[i] != 0 {
				continue
			}
			if k, ok := p.Node.Keyring()[number]; ok && k == rot.Key {
				got[i] = time.Since(start)
				left--
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			missing := slices.Index(got, 0)
			rot, _ := nw.Nodes[missing].Node.State().CurrentRotation()
			return got, fmt.Errorf("sim: %d of %d nodes hold the epoch %d key after %v (node %d does not: epoch %d, %d of %d pages)", len(nw.Nodes)-left, len(nw.Nodes), number, timeout, missing, rot.Epoch, rot.Held, rot.Pages)
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return got, err
		}
	}
	return got, nil
}
