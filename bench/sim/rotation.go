package sim

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node"
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

// AdmitReaders admits the nodes that are neither stewards nor
// organizations as readers of the first organization, as every node of a
// real network is admitted one way or another: only admitted keys may
// sync (PROTOCOL.md §7, sync), and a rotation is sealed to readers.
func (nw *Network) AdmitReaders(ctx context.Context) error {
	if len(nw.Orgs) == 0 {
		return fmt.Errorf("sim: readers need an organization to vouch for them")
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
	return nil
}

// FirstEpoch admits the readers (AdmitReaders), then publishes epoch 1,
// approved by the threshold and sealed to the stewards, and waits for
// every node to take it: a rotation to epoch 2 needs an effective epoch
// 1. Every node already holds its key.
func (nw *Network) FirstEpoch(ctx context.Context) error {
	if err := nw.AdmitReaders(ctx); err != nil {
		return err
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

// Delivery is how a rotation reached the nodes, in node order.
type Delivery struct {
	// Held is how long after the first publish each node held the new
	// key; zero for a node that did not within the timeout.
	Held []time.Duration
	// Publish is how long the origin took to publish every record.
	Publish time.Duration
	// CPU is the CPU time the whole process (every node) spent from the
	// first publish until every node held the key or the timeout: a
	// measure of the delivery's work that the machine's load changes
	// far less than the times above.
	CPU time.Duration
	// BytesIn is what each node's streams read meanwhile (gossip, sync),
	// and PagesGossip and PagesSync the pages each took in by either.
	BytesIn                []int64
	PagesGossip, PagesSync []int
}

// Missed counts the nodes that did not hold the key in time.
func (d Delivery) Missed() int {
	missed := 0
	for _, t := range d.Held {
		if t == 0 {
			missed++
		}
	}
	return missed
}

// DeliverRotation publishes the rotation's records on node origin and
// watches every node meanwhile: a node that holds its key before the last
// page leaves the origin counts from the first publish. A node that did
// not within timeout is an error, with the delivery so far. It returns
// once the origin is done publishing, so the next run starts on a quiet
// network.
func (nw *Network) DeliverRotation(ctx context.Context, origin int, number uint64, rot *Rotation, timeout time.Duration) (Delivery, error) {
	d := Delivery{Held: make([]time.Duration, len(nw.Nodes)), PagesGossip: make([]int, len(nw.Nodes)), PagesSync: make([]int, len(nw.Nodes))}
	var mu sync.Mutex
	var watching sync.WaitGroup
	var cancels []func()
	stopWatching := sync.OnceFunc(func() {
		for _, c := range cancels {
			c()
		}
		watching.Wait()
	})
	defer stopWatching()
	for i, p := range nw.Nodes {
		ch, cancel := p.Node.Subscribe()
		cancels = append(cancels, cancel)
		watching.Go(func() {
			for ev := range ch {
				if ev.Kind != node.EventRecord || ev.Type != directory.TypeEpochPage {
					continue
				}
				mu.Lock()
				switch ev.Via {
				case node.ViaGossip:
					d.PagesGossip[i]++
				case node.ViaSync:
					d.PagesSync[i]++
				}
				mu.Unlock()
			}
		})
	}
	in0 := nw.BytesIn()
	cpu0 := cpuTime()
	start := time.Now()
	published := make(chan error, 1)
	go func() {
		err := nw.Nodes[origin].Node.PublishRotationRecords(ctx, rot.Records)
		d.Publish = time.Since(start) // read after the channel hands err on
		published <- err
	}()
	var err error
	deadline := start.Add(timeout)
	for left := len(nw.Nodes); left > 0; {
		for i, p := range nw.Nodes {
			if d.Held[i] != 0 {
				continue
			}
			if k, ok := p.Node.Keyring()[number]; ok && k == rot.Key {
				d.Held[i] = time.Since(start)
				left--
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			missing := slices.Index(d.Held, 0)
			r, _ := nw.Nodes[missing].Node.State().CurrentRotation()
			err = fmt.Errorf("sim: %d of %d nodes hold the epoch %d key after %v (node %d does not: epoch %d, %d of %d pages)", len(nw.Nodes)-left, len(nw.Nodes), number, timeout, missing, r.Epoch, r.Held, r.Pages)
			break
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			<-published
			return d, err
		}
	}
	d.CPU = cpuTime() - cpu0
	if perr := <-published; perr != nil {
		return d, fmt.Errorf("sim: node %d: %w", origin, perr)
	}
	in := nw.BytesIn()
	stopWatching()
	d.BytesIn = make([]int64, len(in))
	for i := range in {
		d.BytesIn[i] = in[i] - in0[i]
	}
	return d, err
}
