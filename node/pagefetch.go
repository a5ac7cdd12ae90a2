package node

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ceiba-network/ceiba/directory"
)

// A rotation is a burst of large records (190 pages of 64 KiB at 10,000
// recipients), and GossipSub drops what overflows a peer's outbound queue.
// A page lost that way used to spread only by sync, one hop per ask, each
// ask waiting 3, 6, 12 or 24 s: at 10,000 recipients, half the nodes held
// the new key within 5 s and the last one after up to a minute (issue 14).
//
// So a node that knows an epoch whose pages it does not all hold fetches
// them itself, as soon as gossip has gone quiet, when it lacks that
// epoch's key or has taken a page of it (the rotation is being delivered
// now: a node that holds a key from its invite, or an old epoch's, does
// not go after pages nobody sent it): it asks its peers, up to
// pagesAskPeers at once and round-robin over all of them from one round
// to the next, for that rotation's pages by a page session (sessionFor),
// which lists only the rotation's page hashes. A round that brought pages
// is followed by the next at once; one that brought none waits
// pagesAskEvery, doubling up to pagesAskMaxShift times (pages no peer
// has, of a rotation whose publisher failed midway, must not keep every
// node asking), and any page or epoch that arrives starts it over. A page
// taken this way is gossiped on (regossipPage), so the peers that gossip
// missed get it from the mesh, not each by its own ask.
const (
	// pagesQuiet is how long no page may have come by gossip before the
	// node asks for the missing ones: while a burst is arriving, asking
	// would pull what gossip is about to bring.
	pagesQuiet       = 300 * time.Millisecond
	pagesAskPeers    = 8
	pagesAskEvery    = time.Second
	pagesAskMaxShift = 7 // about 2 minutes
)

// pageFetcher is the state of a node's page fetching.
type pageFetcher struct {
	mu         sync.Mutex
	running    bool
	kick       chan struct{} // a page or epoch arrived: look again now
	lastGossip time.Time     // when the last page came by gossip
	next       int           // round-robin position in the peer list
	// taken holds the rotations a page of which this node took, while
	// they are incomplete.
	taken map[rotationID]bool
}

type rotationID struct {
	number   uint64
	rotation [16]byte
}

// wanted lists the incomplete rotations this node fetches pages of,
// newest first, and forgets the complete ones.
func (n *Node) wantedRotations() []directory.MissingPages {
	f := &n.pageFetch
	missing := n.state.IncompleteRotations()
	kr := n.keyringSnapshot()
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []directory.MissingPages
	keep := map[rotationID]bool{}
	for _, m := range missing {
		id := rotationID{m.Number, m.Rotation}
		_, held := kr[m.Number]
		if f.taken[id] {
			keep[id] = true
		}
		if f.taken[id] || !held {
			out = append(out, m)
		}
	}
	f.taken = keep
	return out
}

// notePage tells the fetcher that the records recs, among them pages or
// epoch records, were taken (via says how; none: a key is missing), and
// starts it if there is a rotation to fetch pages of.
func (n *Node) notePage(via Via, recs ...*directory.Record) {
	if n.sync == nil || n.cfg.DisableSync {
		return
	}
	f := &n.pageFetch
	f.mu.Lock()
	for _, r := range recs {
		if r.Type != directory.TypeEpochPage {
			continue
		}
		if b, err := r.DecodeBody(); err == nil {
			pg := b.(*directory.EpochPage)
			if f.taken == nil {
				f.taken = map[rotationID]bool{}
			}
			f.taken[rotationID{pg.Number, pg.Rotation}] = true
			if via == ViaGossip {
				f.lastGossip = time.Now()
			}
		}
	}
	running := f.running
	if running {
		select {
		case f.kick <- struct{}{}:
		default:
		}
	}
	f.mu.Unlock()
	// Callers are inside enter (an ingest, the start-up load), so the
	// node's WaitGroup is not being waited on yet.
	if running || n.ctx.Err() != nil || len(n.wantedRotations()) == 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.running {
		f.running = true
		n.wg.Go(n.fetchPages)
	}
}

// fetchPages runs while the state lists a rotation with missing pages.
func (n *Node) fetchPages() {
	f := &n.pageFetch
	fails := 0
	for {
		missing := n.wantedRotations()
		if len(missing) == 0 {
			f.mu.Lock()
			select {
			case <-f.kick: // something arrived meanwhile: look again
				f.mu.Unlock()
				continue
			default:
			}
			f.running = false
			f.mu.Unlock()
			return
		}
		f.mu.Lock()
		quiet := pagesQuiet - time.Since(f.lastGossip)
		f.mu.Unlock()
		if quiet > 0 {
			if !n.pause(quiet, nil) {
				return
			}
			continue
		}
		target := missing[0] // the newest rotation: the key a node needs now
		n.askPages(&pageTarget{number: target.Number, rotation: target.Rotation})
		after := n.wantedRotations()
		if len(after) == 0 || after[0].Number != target.Number || after[0].Rotation != target.Rotation || after[0].Missing < target.Missing {
			fails = 0
			continue
		}
		fails++
		if !n.pause(pagesAskEvery<<min(fails-1, pagesAskMaxShift), f.kick) {
			return
		}
	}
}

// askPages runs one page session with each of the next pagesAskPeers
// peers, at once, and returns when they are done. The sessions share the
// syncer's pulling set, so a page two peers offer crosses one link.
func (n *Node) askPages(target *pageTarget) {
	peers := n.host.Network().Peers()
	if len(peers) == 0 {
		return
	}
	f := &n.pageFetch
	f.mu.Lock()
	start := f.next % len(peers)
	f.next = start + min(pagesAskPeers, len(peers))
	f.mu.Unlock()
	var wg sync.WaitGroup
	for i := range min(pagesAskPeers, len(peers)) {
		p := peers[(start+i)%len(peers)]
		wg.Go(func() { n.sync.pageSession(p, target) })
	}
	wg.Wait()
}

// pageSession runs one page session with p, taking a slot of the
// syncer's outbound sessions.
func (s *syncer) pageSession(p peer.ID, target *pageTarget) {
	if p == s.n.host.ID() {
		return
	}
	select {
	case s.outbound <- struct{}{}:
	case <-s.n.ctx.Done():
		return
	}
	pulled, _, err := s.sessionFor(p, target)
	<-s.outbound
	if err != nil && pulled == 0 {
		s.n.log.Debug("page session failed", "peer", p, "epoch", target.number, "err", err)
	}
}

// pause waits d, or until the node stops (false) or wake fires.
func (n *Node) pause(d time.Duration, wake <-chan struct{}) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-wake:
	case <-n.ctx.Done():
		return false
	}
	return true
}

// regossipPages gossips on the pages of rec that a sync session brought
// while their rotation was incomplete here: gossip lost them on the way
// to this node, so likely to others too. Each is the sealing stored, which
// is the one the origin gossiped whenever the serving peer handed that on
// (serve), so peers that hold it drop it unopened as a message seen.
// A node gossips a page at most once (it takes a record once), and only
// pages of the rotations IncompleteRotations lists: a node catching up on
// old rotations does not flood them.
func (n *Node) regossipPages(batch []pending, incomplete []directory.MissingPages) {
	for _, b := range batch {
		if b.r.Type != directory.TypeEpochPage || !n.state.Has(b.hash) {
			continue
		}
		body, err := b.r.DecodeBody()
		pg, ok := body.(*directory.EpochPage)
		if err != nil || !ok {
			continue
		}
		for _, m := range incomplete {
			if m.Number == pg.Number && m.Rotation == pg.Rotation {
				n.gossip(n.ctx, b.hash, b.r.Type, b.sealed)
				break
			}
		}
	}
}
