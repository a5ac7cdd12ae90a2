package node

import (
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/ceiba-network/ceiba/directory"
)

// The forwarder's bound (issue 21; PROTOCOL.md §7, "A forwarder held to
// the rate"). A peer forwards by gossip only what it validated, and the
// per-author rate (authorrate.go) lets it validate, of one author, at
// most its bucket (burst b, refilled at r) plus the first version of each
// slot it did not hold. So of the versions one peer delivers that are
// over the author's rate here, an honest peer delivers in any time T at
// most b + r·(T + D), D being how much longer one of its messages took
// to reach us than another (queues, a throttled link), plus one per slot.
// Each (peer, author) gets a bucket of forwarderSlack times the author's:
// an honest peer never empties it unless D exceeds (forwarderSlack-1)
// times b/r (27 minutes at any rate: b/r is 3 minutes), and the first
// over-rate version of each slot is excused once every slotExcuse
// (first versions at the peer, an organization renewing all its entries
// at once). A peer that empties it delivered more of one author than its
// own node could have validated: it is not following the protocol (the
// churner's own node, publishing past its own check, is the case this is
// for), and its GossipSub score is floored below the graylist, so its
// RPCs are dropped on arrival, before GossipSub does any per-message work
// (message IDs, IDONTWANT to the mesh, validation), which is what the
// flood cost its neighbours once the rate check had become cheap.
//
// Only the peer is scored, through the application-specific score: the
// message is still only ignored, never rejected. A rejected message ID
// would score down every peer that delivers the same message, and an
// honest peer may forward one of the churner's versions that was within
// the rate where it was.
const (
	forwarderSlack = 10
	slotExcuse     = 10 * time.Minute
	// overForwardPenalty floors the peer's application-specific score
	// below the graylist whatever credit it earned on the topics
	// (TopicScoreCap); it halves every penaltyHalfLife, so a peer
	// that stops is back above the graylist in a few minutes, and one
	// that goes on empties its bucket again within forwarderSlack·b
	// versions.
	overForwardPenalty = unknownEpochPenalty
)

type forwardRate struct {
	mu        sync.Mutex
	peers     map[peer.ID]map[directory.PublicKey]*forwarded
	lastSweep time.Time
}

// forwarded is what one peer delivered of one author over its rate here.
type forwarded struct {
	bucket  *rate.Limiter
	perHour int
	excused map[string]time.Time // slot → when its over-rate version was last excused
}

func newForwardRate() *forwardRate {
	return &forwardRate{peers: map[peer.ID]map[directory.PublicKey]*forwarded{}}
}

// over counts one version of author's entry slot that p delivered and
// that was over the author's rate here (perHour), and says whether p has
// now delivered more than an honest forwarder could.
func (f *forwardRate) over(p peer.ID, author directory.PublicKey, slot string, perHour int, now time.Time) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.sweep(now)
	authors := f.peers[p]
	if authors == nil {
		authors = map[directory.PublicKey]*forwarded{}
		f.peers[p] = authors
	}
	fw := authors[author]
	limit := rate.Limit(forwarderSlack * float64(perHour) / 3600)
	burst := forwarderSlack * burstOf(perHour)
	switch {
	case fw == nil:
		fw = &forwarded{bucket: rate.NewLimiter(limit, burst), perHour: perHour, excused: map[string]time.Time{}}
		authors[author] = fw
	case fw.perHour != perHour:
		// A charter amendment changed the rate: the bound follows, from
		// the larger of the two, since the peer may have heard of the
		// change before or after this node.
		fw.perHour = perHour
		if limit > fw.bucket.Limit() {
			fw.bucket.SetLimitAt(now, limit)
			fw.bucket.SetBurstAt(now, burst)
		}
	}
	if last, ok := fw.excused[slot]; !ok || now.Sub(last) >= slotExcuse {
		fw.excused[slot] = now
		return false
	}
	return !fw.bucket.AllowN(now, 1)
}

// forgetPeer drops what is counted for p once it is disconnected: a peer
// that restarts comes back with full buckets of its own, so its count
// starts again too. A penalty stays (the syncer keeps it, and GossipSub
// retains a disconnected peer's score).
func (f *forwardRate) forgetPeer(p peer.ID) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.peers, p)
}

// sweep drops, at most once a minute, what a new count would be again:
// full buckets whose excuses have all run out. f.mu is held.
func (f *forwardRate) sweep(now time.Time) {
	if now.Sub(f.lastSweep) < time.Minute {
		return
	}
	f.lastSweep = now
	for p, authors := range f.peers {
		for a, fw := range authors {
			for slot, at := range fw.excused {
				if now.Sub(at) >= slotExcuse {
					delete(fw.excused, slot)
				}
			}
			if len(fw.excused) == 0 && fw.bucket.TokensAt(now) >= float64(fw.bucket.Burst()) {
				delete(authors, a)
			}
		}
		if len(authors) == 0 {
			delete(f.peers, p)
		}
	}
}

// overForwarded is called for a version p delivered by gossip that was
// over its author's rate here: p is graylisted if it delivered more of
// the author than an honest forwarder could have.
func (n *Node) overForwarded(p peer.ID, author directory.PublicKey, slot string) {
	if p == "" || p == n.host.ID() || n.sync == nil {
		return
	}
	perHour := n.updatesPerHour()
	if !n.forwardRate.over(p, author, slot, perHour, time.Now()) {
		return
	}
	if n.sync.penalize(p, overForwardPenalty) {
		n.log.Warn("peer forwarded more versions of one organization's entries than the update rate lets any node forward; graylisted",
			slog.String("peer", p.String()), slog.String("author", directory.Fingerprint(author)), slog.Int("per_hour", perHour))
	}
	n.events.publish(Event{Kind: EventRejected, Via: ViaGossip, From: p, Type: directory.TypeEntry, Err: ErrOverForwarded})
}
