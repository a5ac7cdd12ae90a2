package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node"
)

// CatchUp is a network with one laggard: a reader's node that is stopped
// while the organizations publish a round of updates, then started again
// on its own store and reconnected to its neighbours. What is timed is
// the reconnection to the moment its state holds every update and its
// digest equals the others'; reloading its store comes before the clock
// starts.
//
// An update is a new version (seq+1) of one of the directory's entries, and
// every round updates each entry once, so the laggard must fetch, open,
// verify and apply as many records as there were updates, and the
// directory keeps its size.
type CatchUp struct {
	Net     *Network
	Entries int
	// ViaDHT restarts the laggard without sync (it still serves it) and
	// with a DHT fetch every second, so the DHT alone brings the updates;
	// otherwise sync alone does (the DHT is off everywhere).
	ViaDHT bool
	// Neighbours is how many of its links the laggard reconnects to; zero
	// means all of them.
	Neighbours int

	laggard int
	seq     uint64
	current []directory.Hash // the latest version of every entry
}

// catchUpNodes is the network size: ten nodes, each organization's own
// node publishing, the laggard a reader's node with its ring and chord
// links.
const catchUpNodes = 10

// NewCatchUp builds the network and publishes the directory's first
// version, entries entries spread over five organizations, everywhere
// (and, with viaDHT, in the DHT with every organization's manifest).
func NewCatchUp(ctx context.Context, entries int, viaDHT bool, seed uint64) (*CatchUp, error) {
	// Quick sync rounds fill in whatever gossip drops while the updates
	// are published; the restarted laggard runs the default interval.
	nw, err := New(ctx, Config{N: catchUpNodes, Orgs: 5, DHT: viaDHT, Seed: seed, SyncInterval: 2 * time.Second, Policy: BulkPolicy})
	if err != nil {
		return nil, err
	}
	// The laggard and the other plain node are readers: since sync serves
	// admitted keys only, an unadmitted laggard would get nothing.
	if err := nw.AdmitReaders(ctx); err != nil {
		nw.Close()
		return nil, err
	}
	c := &CatchUp{Net: nw, Entries: entries, ViaDHT: viaDHT, laggard: catchUpNodes - 1}
	if err := c.round(ctx); err != nil {
		nw.Close()
		return nil, err
	}
	return c, nil
}

// Close stops the network.
func (c *CatchUp) Close() error { return c.Net.Close() }

// round publishes the next version of every entry, each from its
// organization's node, and waits until every running node holds all of
// them (and, with the DHT, until every put and manifest is done).
func (c *CatchUp) round(ctx context.Context) error {
	nw := c.Net
	c.seq++
	orgs := len(nw.Orgs)
	recs := make([]*directory.Record, c.Entries)
	for i := range recs {
		org := i % orgs
		r, err := nw.Fix.Entry(nw.Orgs[org], fmt.Sprintf("servicio-%d", i), c.seq, Token(i))
		if err != nil {
			return err
		}
		recs[i] = r
	}
	var running []*Peer
	for _, p := range nw.Nodes {
		if p.Node != nil {
			running = append(running, p)
		}
	}
	deadline := time.Now().Add(5*time.Minute + time.Duration(c.Entries)*20*time.Millisecond)
	// A burst overflows GossipSub's per-peer queues (32 messages), and what
	// they drop only sync brings, at its next round: publish in batches
	// that fit, each delivered everywhere before the next.
	const batch = 25
	c.current = c.current[:0]
	for lo := 0; lo < len(recs); lo += batch {
		part := recs[lo:min(lo+batch, len(recs))]
		if err := c.publish(ctx, lo, part); err != nil {
			return err
		}
		hs := make([]directory.Hash, len(part))
		for i, r := range part {
			hs[i] = r.Hash()
		}
		for _, p := range running {
			if _, err := holdsAll(ctx, p, hs, deadline); err != nil {
				return err
			}
		}
		c.current = append(c.current, hs...)
	}
	if c.ViaDHT {
		return c.waitDHT(ctx, deadline)
	}
	return nil
}

// publish publishes recs, the entries numbered from first, each from its
// organization's node, the organizations in parallel.
func (c *CatchUp) publish(ctx context.Context, first int, recs []*directory.Record) error {
	nw := c.Net
	orgs := len(nw.Orgs)
	var wg sync.WaitGroup
	errs := make([]error, orgs)
	for org := range orgs {
		wg.Go(func() {
			p := nw.Nodes[stewards+org]
			for i, r := range recs {
				if (first+i)%orgs != org {
					continue
				}
				// The node queues at most 1,024 DHT puts and drops the
				// rest until its next republish; stay well under that.
				for c.ViaDHT {
					puts, _, _, _ := p.dht.snapshot()
					if p.published-puts < 256 {
						break
					}
					if err := sleep(ctx, 5*time.Millisecond); err != nil {
						errs[org] = err
						return
					}
				}
				if _, err := p.Node.Publish(ctx, r); err != nil {
					errs[org] = fmt.Errorf("sim: publishing on node %d: %w", p.Index, err)
					return
				}
				p.published++
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// waitDHT waits until every organization node has finished a put for
// each record it published and has a manifest listing all its entries.
func (c *CatchUp) waitDHT(ctx context.Context, deadline time.Time) error {
	nw := c.Net
	orgs := len(nw.Orgs)
	for org := range orgs {
		p := nw.Nodes[stewards+org]
		own := (c.Entries - org + orgs - 1) / orgs
		for {
			puts, failed, slots, lastErr := p.dht.snapshot()
			if failed > 0 {
				return fmt.Errorf("sim: node %d: %d DHT puts failed: %v", p.Index, failed, lastErr)
			}
			if puts >= p.published && slots >= own {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("sim: node %d: %d of %d DHT puts, manifest of %d of %d slots: %v", p.Index, puts, p.published, slots, own, lastErr)
			}
			if err := sleep(ctx, 20*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return nil
}

// holdsAll polls p's state until it holds every hash, and returns when
// it did. Each hash is looked up once it is the first one missing, so a
// poll costs next to nothing however many records there are.
func holdsAll(ctx context.Context, p *Peer, hs []directory.Hash, deadline time.Time) (time.Time, error) {
	i := 0
	for {
		st := p.Node.State()
		for i < len(hs) && st.Has(hs[i]) {
			i++
		}
		if i == len(hs) {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("sim: node %d holds %d of %d records", p.Index, i, len(hs))
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// CatchUpResult is one timed reconnection.
type CatchUpResult struct {
	Took   time.Duration
	Pulled int // records the laggard accepted by the measured path
	Other  int // and by any other
	Peers  int // neighbours it reconnected to
}

// Run stops the laggard, publishes a round of updates, restarts the
// laggard and times its catch-up.
func (c *CatchUp) Run(ctx context.Context) (CatchUpResult, error) {
	nw := c.Net
	lag := nw.Nodes[c.laggard]
	if err := c.stopLaggard(); err != nil {
		return CatchUpResult{}, err
	}
	if err := c.round(ctx); err != nil {
		return CatchUpResult{}, err
	}
	want := nw.Nodes[0].Node.State().Digest()
	// GossipSub advertises what it relayed in the last three heartbeats
	// (IHAVE) and serves it on request for five: a laggard back sooner
	// would get the newest updates by gossip, and the path measured would
	// not be alone.
	if err := sleep(ctx, 6*time.Second); err != nil {
		return CatchUpResult{}, err
	}

	cfg := nw.nodeConfig(lag)
	cfg.SyncInterval = node.DefaultSyncInterval
	if c.ViaDHT {
		cfg.DisableSync = true
		cfg.DHT = node.DHTConfig{AllowPrivateAddrs: true, FetchInterval: time.Second}
	} else {
		cfg.DHT = node.DHTConfig{Disabled: true}
	}
	h, err := nw.addHost(len(nw.Nodes) + int(c.seq))
	if err != nil {
		return CatchUpResult{}, err
	}
	lag.Host, cfg.Host = h, h
	if err := nw.start(ctx, lag, cfg); err != nil {
		return CatchUpResult{}, err
	}
	if c.ViaDHT {
		for _, o := range nw.Nodes {
			if o != lag {
				if _, err := nw.mn.LinkPeers(h.ID(), o.Host.ID()); err != nil {
					return CatchUpResult{}, err
				}
			}
		}
	}
	links := lag.Links
	if c.Neighbours > 0 {
		// A different neighbour each run: a node serves one key at most
		// SyncBytesBurst at once and SyncBytesPerMinute after, and
		// 10,000 updates are about 15 MB, so three catch-ups in a row from
		// one neighbour measured its budget for the laggard's key (61 and
		// 76 s for the second and third) rather than the catch-up.
		first := int(c.seq) % len(links)
		links = slices.Concat(links[first:], links[:first])[:min(c.Neighbours, len(links))]
	}
	start := time.Now()
	for _, j := range links {
		if err := nw.connect(c.laggard, j); err != nil {
			return CatchUpResult{}, err
		}
	}
	deadline := start.Add(10*time.Minute + time.Duration(c.Entries)*50*time.Millisecond)
	done, err := holdsAll(ctx, lag, c.current, deadline)
	if err != nil {
		return CatchUpResult{}, err
	}
	for lag.Node.State().Digest() != want {
		if time.Now().After(deadline) {
			return CatchUpResult{}, fmt.Errorf("sim: the laggard holds every update but its digest differs")
		}
		if err := sleep(ctx, 5*time.Millisecond); err != nil {
			return CatchUpResult{}, err
		}
		done = time.Now()
	}
	via := node.ViaSync
	if c.ViaDHT {
		via = node.ViaDHT
	}
	// The state holds a record a moment before the node counts it.
	var acc map[node.Via]int
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); {
		if acc = lag.Node.Status().Accepted; acc[via] >= c.Entries {
			break
		}
		if err := sleep(ctx, 10*time.Millisecond); err != nil {
			return CatchUpResult{}, err
		}
	}
	return CatchUpResult{Took: done.Sub(start), Pulled: acc[via], Other: acc[node.ViaGossip] + acc[node.ViaSync] + acc[node.ViaDHT] - acc[via], Peers: len(links)}, nil
}

// stopLaggard closes the laggard's node and takes its host off the mock
// network; its datastore stays for the restart.
func (c *CatchUp) stopLaggard() error {
	nw := c.Net
	lag := nw.Nodes[c.laggard]
	if lag.Node == nil {
		return nil
	}
	lag.Node.Close()
	lag.stopWatch()
	<-lag.watchDone
	lag.Node = nil
	for _, o := range nw.Nodes {
		if o != lag {
			a, b := lag.Host.ID(), o.Host.ID()
			nw.mn.DisconnectPeers(a, b)
			nw.mn.UnlinkPeers(a, b)
		}
	}
	return lag.Host.Close()
}
