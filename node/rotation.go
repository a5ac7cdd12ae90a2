package node

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ceiba-network/ceiba/directory"
)

// A rotation's records are published no faster than GossipSub's outbound
// queues drain: each waits until no peer's queue holds more than
// rotationQueueRoom RPCs (of the outboundQueue that fit), or
// rotationQueueWait has passed (outQueues.waitRoom; a peer whose queue did
// not drain in that time is not waited for again for slowPeerFor).
const (
	rotationQueueRoom = 8
	rotationQueueWait = 2 * time.Second
)

// PublishRotation signs and publishes a rotation made by directory.NewEpoch:
// the epoch record first, since a page is taken only once an epoch lists
// it, then every page. It returns the epoch record. A page still missing
// after a few attempts is an error, and the rotation stays incomplete
// until the caller rotates again.
func (n *Node) PublishRotation(ctx context.Context, e *directory.Epoch, pages []*directory.EpochPage) (*directory.Record, error) {
	net := n.state.Network()
	r, err := directory.NewRecord(net, e, n.id)
	if err != nil {
		return nil, fmt.Errorf("node: rotate: %w", err)
	}
	recs := []*directory.Record{r}
	for _, pg := range pages {
		pr, err := directory.NewRecord(net, pg, n.id)
		if err != nil {
			return nil, fmt.Errorf("node: rotate: page %d: %w", pg.Index, err)
		}
		recs = append(recs, pr)
	}
	return r, n.PublishRotationRecords(ctx, recs)
}

// PublishRotationRecords publishes a signed rotation: the epoch record (or
// its approvals) first, then the pages. A rotation is a burst of large
// records, and GossipSub drops what overflows a peer's outbound queue
// (outboundQueue RPCs): each record waits for more room in the queues than
// Publish waits for (rotationQueueRoom), and what is lost anyway a node
// fetches from its peers (pagefetch.go). A record that fails to publish is
// retried a few times.
func (n *Node) PublishRotationRecords(ctx context.Context, recs []*directory.Record) error {
	for i, r := range recs {
		if n.outq != nil {
			if err := n.outq.waitRoom(ctx, rotationQueueRoom, rotationQueueWait); err != nil {
				return err
			}
		}
		for attempt := 0; ; attempt++ {
			_, err := n.Publish(ctx, r)
			if err == nil || errors.Is(err, directory.ErrDuplicate) {
				break
			}
			if attempt == 2 || ctx.Err() != nil {
				return fmt.Errorf("node: rotate: record %d of %d (%s): %w", i+1, len(recs), r.Type, err)
			}
		}
	}
	return nil
}
