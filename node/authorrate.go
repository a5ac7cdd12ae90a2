package node

import (
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/ceiba-network/ceiba/directory"
)

// The per-author update rate (issue 21, finding 3) is a forwarding rule,
// the same on every node: GossipSub validation keeps a token bucket per
// signing key, and every version of an entry slot after the first the
// node holds costs a token: a newer seq, another version at the seq held
// (equivocation), a version of a slot that expired here, from an admitted
// member or from a key still waiting in the pool alike. So what an honest
// node forwards of one author is bounded by the bucket and by the slots it
// did not hold, whatever it knows of the author: what lets a receiver
// hold a forwarder to it (forwardrate.go). Revoked keys have no bucket:
// the state refuses their records. Out of tokens, the version is
// ignored: not applied, not forwarded, and no fault of the peer that
// forwarded it (honest forwarders' buckets differ by when versions
// reached them). What is
// accepted is unchanged, so the state stays a function of the set of
// records; the newest version still reaches every node by sync, which
// carries only the newest version of each slot, so a churning author's
// versions collapse to one per sync round. The first version of a slot
// the node holds costs nothing here: the charter's live-entry limits, and
// the pool's quotas for keys not admitted, bound them (authorlimit.go and
// state.go in directory).
//
// A version from an author whose bucket is already empty is ignored
// before its signature is checked (gossipRateSpent): a churning member's
// neighbours get its flood by gossip and would otherwise verify every
// version only to ignore it. Tokens are spent only after the check
// (gossipRate), so versions forged under an honest author's key cannot
// empty its bucket; they can only be ignored alongside the author's own
// versions while it is over its rate, which changes nothing.

// ErrAuthorRate refuses an entry version over its author's update rate.
var ErrAuthorRate = errors.New("author over the charter's update rate")

// ErrOverForwarded says a peer delivered by gossip more versions of one
// author's entries than the update rate lets any node forward, and is
// graylisted (forwardrate.go).
var ErrOverForwarded = errors.New("peer forwarded more of one author's versions than the update rate lets any node forward")

// authorBurstDivisor sets a bucket's burst to a twentieth of the hourly
// rate (3 at the default 60): an organization can fix a typo a few times
// in a row, no author gets more than 1.05 × the hourly rate forwarded in
// any hour, and a burst of the largest records is small next to a
// lowdata node's cap. (A quarter, 15 at the default, delayed a revocation
// on 100 nodes to 2.2 s while the burst spread: BenchmarkChurn.)
const authorBurstDivisor = 20

// heldBackLogInterval is how often, at most, the node logs that it held
// back one author's versions.
const heldBackLogInterval = 10 * time.Minute

type authorRate struct {
	mu      sync.Mutex
	perHour int
	buckets map[directory.PublicKey]*rate.Limiter
	// held counts versions held back per author since start, and logged
	// when each author was last logged; both only for keys that were
	// admitted members when it happened (buckets are kept for any key:
	// its slots in the pool are bounded by the pool's quotas, and a full
	// bucket is swept).
	held      map[directory.PublicKey]uint64
	logged    map[directory.PublicKey]time.Time
	lastSweep time.Time
}

func newAuthorRate() *authorRate {
	return &authorRate{buckets: map[directory.PublicKey]*rate.Limiter{}, held: map[directory.PublicKey]uint64{}, logged: map[directory.PublicKey]time.Time{}}
}

func burstOf(perHour int) int { return max(1, perHour/authorBurstDivisor) }

// take spends one of pub's tokens at now. When there is none it returns
// how long until there is, and whether to log (once per author per
// heldBackLogInterval).
func (a *authorRate) take(pub directory.PublicKey, perHour int, now time.Time, count bool) (wait time.Duration, logIt bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.bucket(pub, perHour, now, true)
	if b.AllowN(now, 1) {
		return 0, false
	}
	r := b.ReserveN(now, 1)
	wait = r.DelayFrom(now)
	r.CancelAt(now)
	if !count {
		return wait, false
	}
	return wait, a.heldBack(pub, now)
}

// spent is take without taking: how long until pub has a token, zero if
// it has one now. It is what a node may ask before it knows that pub
// signed what it holds: an empty bucket was emptied by versions pub did
// sign, and asking spends nothing, so a forger cannot use it to hold back
// an honest author's versions. A version refused here is counted as held
// back, like one refused by take.
func (a *authorRate) spent(pub directory.PublicKey, perHour int, now time.Time, count bool) (wait time.Duration, logIt bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	b := a.bucket(pub, perHour, now, false)
	if b == nil {
		return 0, false // full: a bucket is kept only once it was drawn on
	}
	tokens := b.TokensAt(now)
	if tokens >= 1 {
		return 0, false
	}
	wait = max(time.Duration((1-tokens)/float64(b.Limit())*float64(time.Second)), 1)
	if !count {
		return wait, false
	}
	return wait, a.heldBack(pub, now)
}

// bucket returns pub's bucket at the rate perHour, making one (full) if
// it has none and create is set. a.mu is held.
func (a *authorRate) bucket(pub directory.PublicKey, perHour int, now time.Time, create bool) *rate.Limiter {
	limit := rate.Limit(float64(perHour) / 3600)
	if perHour != a.perHour {
		// A charter amendment changed the rate: every bucket follows.
		a.perHour = perHour
		for _, b := range a.buckets {
			b.SetLimitAt(now, limit)
			b.SetBurstAt(now, burstOf(perHour))
		}
	}
	a.sweep(now)
	b := a.buckets[pub]
	if b == nil && create {
		b = rate.NewLimiter(limit, burstOf(perHour))
		a.buckets[pub] = b
	}
	return b
}

// heldBack counts one version of pub's held back and says whether to log
// it. a.mu is held.
func (a *authorRate) heldBack(pub directory.PublicKey, now time.Time) (logIt bool) {
	a.held[pub]++
	if now.Sub(a.logged[pub]) >= heldBackLogInterval {
		a.logged[pub] = now
		return true
	}
	return false
}

// sweep forgets buckets that are full again, at most once a minute: a
// full bucket is what a new one would be, so forgetting it changes
// nothing, and the map holds only authors active in the last burst/rate.
func (a *authorRate) sweep(now time.Time) {
	if now.Sub(a.lastSweep) < time.Minute {
		return
	}
	a.lastSweep = now
	for k, b := range a.buckets {
		if b.TokensAt(now) >= float64(b.Burst()) {
			delete(a.buckets, k)
		}
	}
}

// forget drops the counts kept for keys no longer admitted. Their
// buckets stay until they are full again (sweep): forgetting one early
// would let the node forward another burst of the key's versions.
func (a *authorRate) forget(keep func(directory.PublicKey) bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for k := range a.held {
		if !keep(k) {
			delete(a.held, k)
			delete(a.logged, k)
		}
	}
}

// AuthorHeld is how many entry versions from one author this node held
// back under the charter's update rate since it started.
type AuthorHeld struct {
	Author directory.PublicKey
	Name   string // the organization's name, when it is a member
	Held   uint64
}

// HeldBack lists the authors whose versions this node held back, most
// first: what a steward reads to see which member is over its rate.
func (n *Node) HeldBack() []AuthorHeld {
	n.authorRate.forget(func(k directory.PublicKey) bool { _, ok := n.state.Member(k); return ok })
	n.authorRate.mu.Lock()
	out := make([]AuthorHeld, 0, len(n.authorRate.held))
	for k, c := range n.authorRate.held {
		out = append(out, AuthorHeld{Author: k, Held: c})
	}
	n.authorRate.mu.Unlock()
	for i := range out {
		if m, ok := n.state.Member(out[i].Author); ok {
			out[i].Name = m.Name
		}
	}
	slices.SortFunc(out, func(a, b AuthorHeld) int {
		if a.Held != b.Held {
			return int(b.Held) - int(a.Held)
		}
		return slices.Compare(a.Author[:], b.Author[:])
	})
	return out
}

// replacesHeld says whether r is an entry version that costs its author a
// token: a later version of a slot the node holds or held, or with
// sameSeq, another version at the seq it holds (see the rule above). It
// returns the author, and whether the author is an admitted member.
func (n *Node) replacesHeld(r *directory.Record, sameSeq bool) (pub directory.PublicKey, replaces, member bool) {
	if r.Type != directory.TypeEntry || len(r.Sigs) != 1 {
		return directory.PublicKey{}, false, false
	}
	body, err := r.DecodeBody()
	e, ok := body.(*directory.Entry)
	if err != nil || !ok {
		return directory.PublicKey{}, false, false
	}
	return n.replacesHeldEntry(r.Sigs[0].Key, e.ID, e.Seq, sameSeq)
}

// replacesHeldEntry is replacesHeld for version seq of entry id by
// author pub.
func (n *Node) replacesHeldEntry(pub directory.PublicKey, id string, seq uint64, sameSeq bool) (directory.PublicKey, bool, bool) {
	_, member := n.state.Member(pub)
	if !member && n.state.IsRevoked(pub) {
		// The state refuses it, and judges whoever forwards it
		// (classify): the rate adds nothing.
		return pub, false, false
	}
	heldSeq, held := n.state.SlotSeq(pub, id)
	return pub, held && (seq > heldSeq || sameSeq && seq == heldSeq), member
}

func (n *Node) updatesPerHour() int {
	if c := n.state.Charter(); c != nil {
		return c.Policy.MaxAuthorUpdates()
	}
	return directory.Policy{}.MaxAuthorUpdates()
}

// gossipRate applies the forwarding rule to a record that came by gossip,
// once its signature is checked: it spends a token of its author's. A
// copy of the record held was found before (ingest), so a version at the
// seq held is another version at that seq, and costs a token too: an
// honest author never makes one, and forwarding them free would let a
// churner go round the rate.
func (n *Node) gossipRate(r *directory.Record) error {
	pub, replaces, member := n.replacesHeld(r, true)
	if !replaces {
		return nil
	}
	perHour := n.updatesPerHour()
	wait, logIt := n.authorRate.take(pub, perHour, time.Now(), member)
	return n.heldBackErr(pub, perHour, wait, logIt)
}

// gossipRateSpent refuses, before its signature is checked, a version
// that came by gossip from an author whose bucket is empty: what the
// signature check would lead to anyway, at a fraction of the cost. It
// spends nothing (authorRate.spent). A version it lets through is checked
// and charged by gossipRate.
func (n *Node) gossipRateSpent(c directory.Claim) error {
	if c.Type != directory.TypeEntry || len(c.Signers) != 1 {
		return nil
	}
	// Only a later seq: a claim at the seq held may be a copy of the
	// record held under another seal, which is no news and costs nothing.
	pub, replaces, member := n.replacesHeldEntry(c.Signers[0], c.EntryID, c.Seq, false)
	if !replaces {
		return nil
	}
	perHour := n.updatesPerHour()
	wait, logIt := n.authorRate.spent(pub, perHour, time.Now(), member)
	return n.heldBackErr(pub, perHour, wait, logIt)
}

func (n *Node) heldBackErr(pub directory.PublicKey, perHour int, wait time.Duration, logIt bool) error {
	if wait == 0 {
		return nil
	}
	if logIt {
		n.log.Warn("holding back entry versions from an organization over the charter's update rate; sync brings its newest version",
			slog.String("author", directory.Fingerprint(pub)), slog.Int("per_hour", perHour))
	}
	return fmt.Errorf("%w: %s, %d replacing versions per hour", ErrAuthorRate, directory.Fingerprint(pub), perHour)
}

// checkLocalEntry refuses, on the publisher's own node (the one whose
// identity signed r), an entry version the network would hold back: over
// the live-entry limits, or over the update rate. It says what the limit
// is and, for the rate, when the next update can go.
func (n *Node) checkLocalEntry(r *directory.Record) error {
	if r.Type != directory.TypeEntry || len(r.Sigs) != 1 {
		return nil
	}
	body, err := r.DecodeBody()
	e, ok := body.(*directory.Entry)
	if err != nil || !ok {
		return nil // Apply says what is wrong with it
	}
	pub := r.Sigs[0].Key
	if pub != n.id.Public() {
		// Only an organization's own node speaks for it. A record of
		// another key handed to Publish (a relayed copy, a test) is
		// judged by every other node's rules, not refused here.
		return nil
	}
	if _, member := n.state.Member(pub); !member {
		return nil
	}
	if err := n.state.CheckPublish(pub, e, len(r.Encode())); err != nil {
		return err
	}
	if _, replaces, _ := n.replacesHeld(r, false); !replaces {
		return nil
	}
	if held, ok := n.state.HeldEntry(pub, e.ID); ok && held.Deleted == e.Deleted && reflect.DeepEqual(held.Service, e.Service) {
		// A renewal: the same service with a later expiry. An
		// organization renews every entry before it expires, often all
		// at once; refusing here would keep its listings from expiring
		// only by making it wait hours. Other nodes still forward
		// renewals within the rate, and sync brings the rest.
		return nil
	}
	perHour := n.updatesPerHour()
	now := time.Now()
	if wait, _ := n.localRate.take(pub, perHour, now, false); wait > 0 {
		wait = wait.Round(time.Second)
		return fmt.Errorf("%w: this organization updated its entries %d times recently; the network forwards %d updates an hour (a burst of %d); the next update is possible in %s, at %s",
			ErrAuthorRate, burstOf(perHour), perHour, burstOf(perHour), wait, now.Add(wait).UTC().Format("15:04:05 UTC"))
	}
	return nil
}
