package node

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	msmux "github.com/multiformats/go-multistream"

	"github.com/ceiba-network/ceiba/directory"
)

// SyncProtocol is anti-entropy sync: the initiator pulls what the responder
// holds and it lacks.
//
// A session is a short exchange on one stream (I initiator, R responder):
//
//	I → R  hello     proof(I), I's key, time, nonce, signature, the epochs I holds keys for
//	R → I  helloAck  proof(R), count and root of what R offers I
//	I → R  wantBuckets                        (only if the roots differ)
//	R → I  buckets   256 × (count, hash) by the first byte of record hashes
//	I → R  wantLists the buckets whose hash differs
//	R → I  list      one per bucket: the record hashes in it, each with
//	                 its record's apply rank (syncRank)
//	I → R  wantRecords the hashes I lacks, at most SyncMaxRecords, in rank
//	                 order: what other records depend on first
//	R → I  record    one per hash: hash, sealed record (empty if gone),
//	                 governance first, entries last
//	I → R  done
//
// A page session (pagefetch.go) asks, right after the helloAck, for one
// rotation's pages instead of comparing digests:
//
//	I → R  wantPages   epoch number, rotation ID
//	R → I  pages       the record hashes of that rotation's pages R holds
//	I → R  wantRecords the ones I lacks; then records and done as above
//
// Instead of any of its messages after the helloAck, R may send busy
// (seconds to wait, uint32) and close: I's key or peer ID is over its byte
// budget (syncbudget.go). I keeps what arrived and comes back after the
// wait, which is no failure: a fresh node's first pull of a large
// directory (10,000 reader grants and a rotation's pages are about 37 MB)
// outgrows the burst and must resume as the budget refills, not back off
// as from a broken peer (with doubling back-off a fresh reader's node
// went minutes without the key).
//
// The proofs are HMACs over both peer IDs under a key derived from the
// network ID, so a peer that does not hold the charter learns nothing, not
// even how many records there are. The network ID is no secret to a
// revoked device or a leaked invite, so I's hello also carries its
// directory key's signature over both peer IDs, the time and a fresh
// nonce (helloTranscript): R serves only keys its directory admits and
// has not revoked, refuses a hello dated outside the charter's clock skew
// or seen before, and charges everything it sends to that key's (and that
// peer ID's) budget (syncbudget.go). R offers only records it may seal
// under a key I holds and that is no older than the key R stored them
// under: a device that kept an old key after a rotation gets nothing
// published since.
const SyncProtocol protocol.ID = "/ceiba/sync/2.0.0"

// Protocol bounds. A peer that exceeds them gets its stream reset.
const (
	maxControlFrame    = 1 << 20
	maxRecordFrame     = directory.MaxSealedBytes + 64
	maxHelloKeys       = 256
	maxHashesPerBucket = 16384 // 512 KiB of hashes, under maxControlFrame
	// lackingPerSession × SyncMaxRecords is how many listed hashes one
	// session keeps at most: enough to pick the lowest-ranked records.
	lackingPerSession    = 4
	maxRecordsPerSession = 4096
	maxBytesPerSession   = 64 << 20
	// syncApplyBytes is how much of what a session brought the initiator
	// holds before it applies it.
	syncApplyBytes        = 8 << 20
	maxRequestsPerSession = 4
	maxInboundPerPeer     = 2
	maxInboundTotal       = 32
	// maxInboundStreams bounds the sync streams open at once, sessions and
	// hellos not yet checked; helloTimeout is how long a hello may take.
	maxInboundStreams     = 4 * maxInboundTotal
	helloTimeout          = 3 * time.Second
	maxOutbound           = 8 // sessions this node runs at once
	maxSessionsInARow     = 64
	rejectedTTL           = 10 * time.Minute
	maxRejectedRemembered = 100_000
	// misbehaviourPenalty is subtracted from a peer's GossipSub score (via
	// the application-specific score) each time it serves a record that
	// does not open or verify; it halves every penaltyHalfLife.
	misbehaviourPenalty = 250
	penaltyHalfLife     = 10 * time.Minute
	// unknownEpochPenalty is the application-specific penalty of a peer
	// shown to seal gossip under an epoch it is not ahead on: enough to
	// graylist it whatever credit it earned in the topic (TopicScoreCap).
	// It is a floor, not a sum, so that it stays graylisted while it
	// keeps on and recovers once it stops (half-life above).
	unknownEpochPenalty = -GraylistThreshold + 100
	// distrustFor is how long such a peer's unknown-epoch messages prompt
	// no sync.
	distrustFor = time.Hour
)

const (
	msgHello byte = iota + 1
	msgHelloAck
	msgWantBuckets
	msgBuckets
	msgWantLists
	msgList
	msgWantRecords
	msgRecord
	msgDone
	msgBusy
	msgWantPages
	msgPages
)

// busyError is a session a responder ended because this node is over its
// byte budget there: come back after wait.
type busyError struct{ wait time.Duration }

func (e *busyError) Error() string {
	return fmt.Sprintf("sync: the peer's byte budget for this node is spent; resuming in %v", e.wait)
}

// maxBusyWait bounds how long a responder may put this node off: no
// longer than the back-off after repeated failures.
const maxBusyWait = 5 * time.Minute

var (
	errForeign     = errors.New("sync: peer is not in this network")
	errMisbehaving = errors.New("sync: peer broke the protocol or served invalid records")
)

type peerSync struct {
	running, again bool
	lastOK         time.Time
	notBefore      time.Time
	failures       int
	lastErr        error
	// skipped: the last session left out records refused recently, so it
	// may not have pulled everything the peer holds.
	skipped bool
	// claim is the latest key tag this peer sealed gossip under that
	// this node holds no key for (claimed says whether there is one);
	// sessions with the peer settle it (judgeClaim). distrusted: until
	// then, its unknown-key messages prompt no sync and keep it
	// graylisted.
	claim      directory.KeyTag
	claimed    bool
	claimAt    time.Time
	distrusted time.Time
}

type penalty struct {
	v  float64
	at time.Time
}

// syncer runs sync sessions for a node, both ways.
type syncer struct {
	n        *Node
	proofKey []byte

	mu     sync.Mutex
	closed bool
	peers  map[peer.ID]*peerSync
	// synced keeps when peers that have gone (forget) last finished a
	// session, for recent: a peer reached over a relay circuit that has
	// closed since is still one this node synced with lately.
	synced   map[peer.ID]time.Time
	inbound  map[peer.ID]int
	inTotal  int
	lastSync time.Time
	rejected map[directory.Hash]time.Time // record hash → not pulled again before
	penalty  map[peer.ID]penalty
	// pulling holds the hashes a running session has asked for: another
	// session (with another peer) leaves them out, so a record crosses
	// this node's link once however many peers offer it at the same time.
	// A session that ends without it frees the hash for the next one.
	pulling map[directory.Hash]struct{}

	opening map[peer.ID]int // sync streams open per peer, checked or not
	budgets *budgets
	replays helloReplays
	seals   *sealCache

	outbound chan struct{} // semaphore of maxOutbound
	// applyBytes is what a session holds of what it brought before it
	// applies it (syncApplyBytes; tests shrink it).
	applyBytes int

	digestMu  sync.Mutex
	digest    *digest
	digestVer uint64
	maxFloor  uint64
}

func newSyncer(n *Node) *syncer {
	return &syncer{
		n:          n,
		proofKey:   syncProofKey(n.cfg.Network),
		peers:      map[peer.ID]*peerSync{},
		synced:     map[peer.ID]time.Time{},
		inbound:    map[peer.ID]int{},
		opening:    map[peer.ID]int{},
		budgets:    newBudgets(),
		seals:      newSealCache(),
		applyBytes: syncApplyBytes,
		rejected:   map[directory.Hash]time.Time{},
		penalty:    map[peer.ID]penalty{},
		pulling:    map[directory.Hash]struct{}{},
		outbound:   make(chan struct{}, maxOutbound),
	}
}

// shutdown stops new sessions; it runs before the node waits for its
// goroutines, so no session starts after the wait began.
func (s *syncer) shutdown() {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// request asks for a session with p soon. It coalesces: while a session
// with p runs, any number of requests add up to one more. It reports
// whether a session is running or scheduled.
func (s *syncer) request(p peer.ID) bool {
	if s == nil || p == s.n.host.ID() || s.n.cfg.DisableSync {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	ps := s.peers[p]
	if ps == nil {
		ps = &peerSync{}
		s.peers[p] = ps
	}
	if ps.running {
		ps.again = true
		return true
	}
	if time.Now().Before(ps.notBefore) {
		return false
	}
	ps.running = true
	s.n.wg.Add(1)
	go s.run(p)
	return true
}

func (s *syncer) run(p peer.ID) {
	defer s.n.wg.Done()
	for i := 0; ; i++ {
		select {
		case s.outbound <- struct{}{}:
		case <-s.n.ctx.Done():
			s.mu.Lock()
			s.peers[p].running = false
			s.mu.Unlock()
			return
		}
		started := time.Now()
		pulled, more, err := s.session(p)
		<-s.outbound
		now := time.Now()
		s.mu.Lock()
		ps := s.peers[p]
		ps.lastErr = err
		var busy *busyError
		resume := time.Duration(0)
		// cut: the session ended in an error after it brought records
		// (the peer's session deadline passed on a slow link, the
		// stream was reset): they are applied, and the pull goes on at
		// once, as after a session that ended cleanly with more to
		// come. Counted a failure, it waited for the next sync round
		// (the node's SyncInterval, minutes) with the directory half
		// pulled. A peer that breaks the protocol gets no such turn.
		cut := err != nil && pulled > 0 && !errors.As(err, &busy) && !errors.Is(err, errMisbehaving) && !errors.Is(err, ErrClosed)
		switch {
		case err == nil:
			ps.lastOK, s.lastSync, ps.failures = now, now, 0
		case cut:
			ps.failures = 0
		case errors.As(err, &busy):
			// The peer is well and served what the budget allowed: the
			// pull resumes when the peer said, without counting a
			// failure, whoever asks for it before (the next session
			// would be cut at once).
			resume = busy.wait
			ps.notBefore = now.Add(resume)
		default:
			ps.failures++
			ps.notBefore = now.Add(backoff(err, ps.failures))
		}
		again := (err == nil && (ps.again || more) || cut) && i < maxSessionsInARow && !s.closed
		ps.again = false
		if !again {
			ps.running = false
		}
		// A clean end: the peer offered nothing more, and nothing it
		// offered was left out.
		clean := err == nil && !more && !ps.skipped
		s.mu.Unlock()
		if !again {
			s.judgeClaim(p, err, clean, started)
			// The peer may have gone while the session ran, when its
			// state could not be dropped. Counted by connections, as
			// where it is dropped on disconnect: a peer reached only
			// over a relay circuit is Limited, not Connected, and has
			// not gone.
			if len(s.n.host.Network().ConnsToPeer(p)) == 0 {
				s.forget(p)
			}
		}
		if resume > 0 {
			time.AfterFunc(resume, func() { s.request(p) })
		}
		if err != nil && !errors.Is(err, errForeign) {
			s.n.log.Debug("sync failed", "peer", p, "err", err)
		}
		if !errors.Is(err, errForeign) {
			s.n.events.publish(Event{Kind: EventSync, Via: ViaSync, From: p, Pulled: pulled, Err: err})
		}
		if !again {
			return
		}
	}
}

// forget drops p's sync state once p has gone, so that peers that come
// and go (keyless ones cut by admission, from fresh peer IDs) leave
// nothing behind. State a reconnect must not wipe stays: a running
// session (which calls forget as it ends), an unsettled claim,
// distrust; a penalty is kept apart, in s.penalty. The failure back-off
// goes: a peer that reconnects has to pass admission again first.
func (s *syncer) forget(p peer.ID) {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	ps := s.peers[p]
	if ps == nil || ps.running || ps.claimed || now.Before(ps.distrusted) {
		return
	}
	delete(s.peers, p)
	if ps.lastOK.IsZero() {
		return
	}
	for q, t := range s.synced {
		if now.Sub(t) > s.recentWindow() {
			delete(s.synced, q)
		}
	}
	s.synced[p] = ps.lastOK
}

// recentWindow is how long a finished session counts as recent (Status).
func (s *syncer) recentWindow() time.Duration { return 2 * s.n.cfg.SyncInterval }

// claimEpoch notes that p sent gossip sealed under the key tagged tag,
// which this node holds no key for, and asks for a session with p, which
// brings the epoch record (and this node's key, if it is a recipient) from
// an honest peer that is ahead. A peer already shown not to be ahead gets
// no session: its penalty is renewed instead. The header names no epoch
// (PROTOCOL.md §5), so the claim is judged by the tag alone.
func (s *syncer) claimEpoch(p peer.ID, tag directory.KeyTag) {
	if s == nil || p == "" || p == s.n.host.ID() {
		return
	}
	if s.n.behindOnKeys() {
		// This node knows an epoch record whose key it lacks (pages
		// still coming, or not a recipient): it cannot tell that key's
		// tag, the peer may be ahead, sync may help.
		s.request(p)
		return
	}
	s.mu.Lock()
	ps := s.peers[p]
	if ps == nil {
		ps = &peerSync{}
		s.peers[p] = ps
	}
	if time.Now().Before(ps.distrusted) {
		s.mu.Unlock()
		s.penalize(p, unknownEpochPenalty)
		return
	}
	ps.claim, ps.claimed = tag, true
	ps.claimAt = time.Now()
	lastErr := ps.lastErr
	s.mu.Unlock()
	if !s.request(p) && lastErr != nil {
		// In back-off after a session that failed: if it showed p not to
		// be a member at all, that settles the claim now.
		s.judgeClaim(p, lastErr, false, time.Time{})
	}
}

// judgeClaim settles p's unknown-epoch claim after a session with p ended
// with err (clean: it ended with nothing more offered and nothing left
// out). The claim stands if this node now holds the key the tag names, or
// knows an epoch record whose key it lacks (behindOnKeys). It is shown
// false if p does not speak this network's sync (errForeign: no honest
// peer, let alone one ahead, is so), broke the protocol, or completed a
// clean session without the epoch record, which every honest peer that
// holds the key offers (it is sealed under the epoch before it: sessions
// go on while they bring new keys). Any other failure (a timeout, a hello
// the peer refused) settles nothing: the claim waits for the next session.
// A claim made after the session started (a non-zero started) waits for
// the next one too: the peer may have rotated meanwhile.
func (s *syncer) judgeClaim(p peer.ID, err error, clean bool, started time.Time) {
	s.mu.Lock()
	ps := s.peers[p]
	if ps == nil || !ps.claimed || !started.IsZero() && ps.claimAt.After(started) {
		s.mu.Unlock()
		return
	}
	claim := ps.claim
	s.mu.Unlock()
	if _, _, ok := s.n.keyringSnapshot().ByTag(claim); ok || s.n.behindOnKeys() {
		s.mu.Lock()
		ps.claimed = false
		s.mu.Unlock()
		return
	}
	if !clean && !errors.Is(err, errForeign) && !errors.Is(err, errMisbehaving) {
		return
	}
	s.mu.Lock()
	ps.claimed = false
	ps.distrusted = time.Now().Add(distrustFor)
	s.mu.Unlock()
	s.penalize(p, unknownEpochPenalty)
	s.n.log.Warn("peer sent records sealed under an epoch it is not ahead on; graylisted", "peer", p, "key_tag", claim.String(), "session", errString(err))
}

// behindOnKeys says whether this node knows of an epoch newer than the
// newest key it holds: then a key tag it does not recognize may well be
// that epoch's.
func (n *Node) behindOnKeys() bool {
	newest, _, _ := n.keyringSnapshot().Current()
	return n.state.KnowsEpoch(newest + 1)
}

func errString(err error) string {
	if err == nil {
		return "completed"
	}
	return err.Error()
}

// penalize raises p's penalty to at least floor, and says whether it was
// below it.
func (s *syncer) penalize(p peer.ID, floor float64) (raised bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	pen := s.penalty[p]
	was := decayed(pen, now)
	pen.v, pen.at = max(was, floor), now
	s.penalty[p] = pen
	return was < floor
}

func backoff(err error, failures int) time.Duration {
	switch {
	case errors.Is(err, errForeign):
		return time.Minute
	case errors.Is(err, errMisbehaving):
		return 30 * time.Minute
	}
	return min(time.Duration(1<<min(failures, 8))*time.Second, 5*time.Minute)
}

// recent reports the last successful pull and how many distinct peers
// were pulled from successfully within window.
func (s *syncer) recent(window time.Duration) (time.Time, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for p, ps := range s.peers {
		if !ps.lastOK.IsZero() && time.Since(ps.lastOK) <= window {
			n++
		} else if t, ok := s.synced[p]; ok && time.Since(t) <= window {
			n++
		}
	}
	for p, t := range s.synced {
		if _, here := s.peers[p]; !here && time.Since(t) <= window {
			n++
		}
	}
	return s.lastSync, n
}

func (s *syncer) noteRejected(h directory.Hash) { s.noteRejectedFor(h, rejectedTTL) }

// noteRejectedFor keeps sessions from pulling record h again for d (at most
// rejectedTTL): it would be refused again.
func (s *syncer) noteRejectedFor(h directory.Hash, d time.Duration) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.rejected) >= maxRejectedRemembered {
		clear(s.rejected)
	}
	s.rejected[h] = time.Now().Add(min(d, rejectedTTL))
}

// forgetRejected lets sessions pull again everything refused lately: a
// key came back from revocation (a revocation lost its threshold), so what
// it signed, refused as revoked, is taken now.
func (s *syncer) forgetRejected() {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.rejected)
}

func (s *syncer) recentlyRejected(h directory.Hash) bool {
	until, ok := s.rejected[h]
	return ok && time.Now().Before(until)
}

func (s *syncer) misbehaved(p peer.ID, why string) {
	s.mu.Lock()
	pen := s.penalty[p]
	pen.v = decayed(pen, time.Now()) + misbehaviourPenalty
	pen.at = time.Now()
	s.penalty[p] = pen
	s.mu.Unlock()
	s.n.log.Warn("peer misbehaved in sync", "peer", p, "why", why)
}

func decayed(p penalty, now time.Time) float64 {
	if p.v == 0 {
		return 0
	}
	return p.v * math.Pow(0.5, float64(now.Sub(p.at))/float64(penaltyHalfLife))
}

// appScore is GossipSub's application-specific score: a peer that served
// invalid records in sync is scored down in gossip too.
func (s *syncer) appScore(p peer.ID) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	pen, ok := s.penalty[p]
	if !ok {
		return 0
	}
	return -decayed(pen, time.Now())
}

func (s *syncer) proof(role byte, initiator, responder peer.ID) []byte {
	return directory.SyncProof(s.proofKey, role, []byte(initiator), []byte(responder))
}

// session pulls from p once. more reports that p offered more than one
// session may take and this one made headway, or that a new read key
// arrived that opens more.
func (s *syncer) session(p peer.ID) (pulled int, more bool, err error) {
	return s.sessionFor(p, nil)
}

// pageTarget names the rotation a page session asks for.
type pageTarget struct {
	number   uint64
	rotation [16]byte
}

// sessionFor is session, or with a target a page session: instead of
// comparing digests, it asks p for the record hashes of the target
// rotation's pages p holds (wantPages, answered by pages) and pulls the
// ones this node lacks. It costs three round trips and a list of at most
// a few thousand hashes, whatever the directory's size, so a node missing
// a rotation's pages can ask every peer at once (pagefetch.go).
func (s *syncer) sessionFor(p peer.ID, target *pageTarget) (pulled int, more bool, err error) {
	n := s.n
	me := n.host.ID()
	// A peer behind a symmetric NAT may be connected only through a relay
	// circuit (a limited connection), and libp2p opens no stream on one
	// unless told to; without this, relay-only peers would never sync.
	// Riding a circuit is safe because a session is bounded and loses
	// nothing if the relay cuts it at its data or time limit (ours:
	// transport.RelayResources, 2 min / 1 MiB; libp2p's default relay
	// 2 min / 128 KiB): it pulls at most SyncMaxRecords, each record is
	// opened and checked on its own as it arrives, the records that
	// arrived before a read error are still accepted after the loop
	// below, and the next session (on the next circuit) asks only for
	// what is still missing. What must fit in one circuit is a session's
	// fixed part: the bucket table (9 KiB) and the hash lists (32 bytes
	// per record in the buckets that differ).
	ctx := network.WithAllowLimitedConn(network.WithNoDial(n.ctx, "sync with connected peers only"),
		"sync is bounded and resumable, so it may ride a relay circuit")
	ctx, cancel := context.WithTimeout(ctx, n.cfg.SyncTimeout)
	defer cancel()
	st, err := n.host.NewStream(ctx, p, SyncProtocol)
	if err != nil {
		if errors.Is(err, msmux.ErrNotSupported[protocol.ID]{}) {
			return 0, false, errForeign
		}
		return 0, false, err
	}
	defer st.Reset() // no-op after a clean Close
	// A read blocked on a silent peer must not hold up Close.
	defer context.AfterFunc(ctx, func() { st.Reset() })()
	deadline, _ := ctx.Deadline()
	st.SetDeadline(deadline)
	c := newWire(st)

	kr := n.keyringSnapshot()
	keyEpochBefore, _, _ := kr.Current()
	epochs := slices.Sorted(maps.Keys(kr))
	if len(epochs) > maxHelloKeys {
		epochs = epochs[len(epochs)-maxHelloKeys:]
	}
	hello := append(s.proof('I', me, p), signedHello(n.id, n.cfg.Network, me, p, n.cfg.Now(), epochs)...)
	if err := c.send(msgHello, hello); err != nil {
		return 0, false, err
	}
	body, err := c.expect(msgHelloAck, maxControlFrame)
	if err != nil {
		return 0, false, err
	}
	if len(body) != 32+4+32 {
		return 0, false, errMisbehaving
	}
	if !hmac.Equal(body[:32], s.proof('R', me, p)) {
		return 0, false, errForeign
	}
	var theirRoot directory.Hash
	copy(theirRoot[:], body[36:])
	theirCount := binary.BigEndian.Uint32(body[32:])

	var want []byte // the buckets whose lists are asked for
	var bucketCount [256]uint32
	if target == nil {
		own := s.ownDigest()
		if theirRoot == own.Root {
			return 0, false, c.finish()
		}
		if err := c.send(msgWantBuckets, nil); err != nil {
			return 0, false, err
		}
		body, err = c.expect(msgBuckets, maxControlFrame)
		if err != nil {
			return 0, false, err
		}
		if len(body) != 256*36 {
			s.misbehaved(p, "bucket list of the wrong size")
			return 0, false, errMisbehaving
		}
		var total uint64
		for b := range 256 {
			count := binary.BigEndian.Uint32(body[b*36:])
			bucketCount[b] = count
			total += uint64(count)
			if count > 0 && !bytes.Equal(body[b*36+4:b*36+36], own.Buckets[b][:]) {
				want = append(want, byte(b))
			}
		}
		if total != uint64(theirCount) {
			s.misbehaved(p, "bucket counts that do not add up to the count announced")
			return 0, false, errMisbehaving
		}
		if len(want) == 0 {
			return 0, false, c.finish()
		}
		if err := c.send(msgWantLists, want); err != nil {
			return 0, false, err
		}
	} else {
		req := binary.BigEndian.AppendUint64(nil, target.number)
		if err := c.send(msgWantPages, append(req, target.rotation[:]...)); err != nil {
			return 0, false, err
		}
	}
	var missing []directory.Hash
	truncated, skipped := false, false
	defer func() {
		s.mu.Lock()
		for _, h := range missing {
			delete(s.pulling, h)
		}
		if ps := s.peers[p]; ps != nil {
			ps.skipped = skipped
		}
		s.mu.Unlock()
	}()
	// byRank holds the listed hashes this node lacks, by the rank they
	// were listed with (rank[h]), in the order listed. A session asks for
	// SyncMaxRecords of them; beyond a few times that, the highest ranked
	// are let go (cut: a later session asks again), so that what a peer
	// lists, honest or not, cannot make this node hold millions of hashes
	// (a hostile responder's lists held 4 M, 640 MiB).
	var byRank [kindEntry + 1][]directory.Hash
	rank := map[directory.Hash]byte{}
	keepMax := lackingPerSession * n.cfg.SyncMaxRecords
	cut := false
	keep := func(h directory.Hash, kind byte) {
		if len(rank) >= keepMax {
			w := len(byRank) - 1
			for w > int(kind) && len(byRank[w]) == 0 {
				w--
			}
			cut = true
			if w <= int(kind) {
				return
			}
			last := byRank[w][len(byRank[w])-1]
			byRank[w] = byRank[w][:len(byRank[w])-1]
			delete(rank, last)
		}
		byRank[kind] = append(byRank[kind], h)
		rank[h] = kind
	}
	if target != nil {
		body, err := c.expect(msgPages, maxControlFrame)
		if err != nil {
			return 0, false, err
		}
		cnt := 0
		if len(body) >= 4 {
			cnt = int(binary.BigEndian.Uint32(body))
		}
		if len(body) < 4 || cnt > maxHashesPerBucket || len(body) != 4+32*cnt {
			s.misbehaved(p, "malformed page list")
			return 0, false, errMisbehaving
		}
		for i := range cnt {
			var h directory.Hash
			copy(h[:], body[4+32*i:])
			if _, dup := rank[h]; dup || n.state.Has(h) {
				continue
			}
			if n.parked.has(h) {
				skipped = true
				continue
			}
			keep(h, kindPage)
		}
	}
	for _, b := range want {
		body, err := c.expect(msgList, maxControlFrame)
		if err != nil {
			return 0, false, err
		}
		if len(body) < 5 || body[0] != b {
			s.misbehaved(p, "list for a bucket not asked for")
			return 0, false, errMisbehaving
		}
		cnt := int(binary.BigEndian.Uint32(body[1:]))
		if cnt > maxHashesPerBucket || len(body) != 5+listItem*cnt {
			s.misbehaved(p, "malformed hash list")
			return 0, false, errMisbehaving
		}
		// Fewer than the table said is honest (records dropped since),
		// more is not.
		if uint32(cnt) > bucketCount[b] {
			s.misbehaved(p, "hash list longer than its bucket's count")
			return 0, false, errMisbehaving
		}
		var prev directory.Hash
		for i := range cnt {
			var h directory.Hash
			item := body[5+listItem*i:]
			copy(h[:], item)
			kind := item[32]
			if h[0] != b || (i > 0 && bytes.Compare(prev[:], h[:]) >= 0) || kind > kindEntry {
				s.misbehaved(p, "hash list out of order, in the wrong bucket or of an unknown kind")
				return 0, false, errMisbehaving
			}
			prev = h
			if n.state.Has(h) {
				continue
			}
			if n.parked.has(h) {
				// Held back, not pulled: this session did not settle
				// whether the peer holds something this node lacks.
				skipped = true
				continue
			}
			keep(h, kind)
		}
	}
	// In the order a state applies them, across sessions: when more is
	// missing than one session takes, this one asks for every record of a
	// lower rank first. So a revocation is not left to a later session
	// behind a catch-up's entries, and the membership and epoch that admit
	// thousands of reader grants and pages come before them: pulled in
	// hash order, grants came first, filled the bounded parked lot, were
	// dropped and fetched again, round and round (issue 14, at 10,000
	// recipients).
	var lacking []directory.Hash
	for _, hs := range byRank {
		lacking = append(lacking, hs...)
	}
	truncated = cut
	s.mu.Lock()
	for _, h := range lacking {
		if _, elsewhere := s.pulling[h]; elsewhere || s.recentlyRejected(h) {
			skipped = true
			continue
		}
		if len(missing) == n.cfg.SyncMaxRecords {
			truncated = true
			continue
		}
		s.pulling[h] = struct{}{}
		missing = append(missing, h)
	}
	s.mu.Unlock()
	if len(missing) == 0 {
		return 0, false, c.finish()
	}
	req := binary.BigEndian.AppendUint32(nil, uint32(len(missing)))
	for _, h := range missing {
		req = append(req, h[:]...)
	}
	if err := c.send(msgWantRecords, req); err != nil {
		return 0, false, err
	}
	// The responder sends governance first (serve), in any order it
	// likes: each frame must be for a hash asked for and not yet sent.
	asked := make(map[directory.Hash]bool, len(missing))
	for _, h := range missing {
		asked[h] = true
	}
	var recs []*directory.Record
	// sealedIn keeps each record's sealing as served, to store as it is
	// where it is what this node would seal (acceptBatchSealed).
	sealedIn := make(map[directory.Hash][]byte)
	var fault error
	// apply takes what arrived so far. It runs once more at the first
	// entry after governance records, so that on a slow link a
	// revocation applies as soon as it arrives, not after the entries
	// of a session that may take minutes.
	apply := func() error {
		if len(recs) == 0 {
			return nil
		}
		if !n.enter() {
			return ErrClosed
		}
		defer n.leave()
		k, err := n.acceptBatchSealed(recs, sealedIn, p, ViaSync)
		pulled += k
		recs = recs[:0]
		clear(sealedIn)
		return err
	}
	govRun := false // governance records arrived since the last apply
	received := 0
	held := 0 // sealed bytes in recs
	for range missing {
		body, err := c.expect(msgRecord, maxRecordFrame)
		if err != nil {
			// Keep what arrived intact: each record stands on its own.
			fault = err
			break
		}
		var want directory.Hash
		if len(body) >= 32 {
			copy(want[:], body[:32])
		}
		if len(body) < 32 || !asked[want] {
			s.misbehaved(p, "record frame for a hash not asked for")
			fault = errMisbehaving
			break
		}
		delete(asked, want)
		if len(body) == 32 {
			continue // dropped by p since it listed it
		}
		// No ErrNoKey exception: the responder seals under the key of the
		// newest epoch the hello listed that it holds too, so a record
		// this node cannot open was sealed under another key than the one
		// both hold (the header's tag names the key, not the epoch).
		r, err := directory.Open(body[32:], n.cfg.Network, kr)
		if err != nil || r.Hash() != want {
			s.misbehaved(p, fmt.Sprintf("served a record that does not open or match: %v", err))
			fault = errMisbehaving
			break
		}
		if byte(syncRank(r)) != rank[want] || target != nil && r.Type != directory.TypeEpochPage {
			// The rank is the record's type's, fixed by its hash: the
			// list lied about it, to have entries asked for first or
			// governance last.
			s.misbehaved(p, "listed a record as the wrong kind")
			fault = errMisbehaving
			break
		}
		if r.Type == directory.TypeEntry && govRun {
			govRun = false
			if err := apply(); err != nil {
				fault = err
				break
			}
		}
		govRun = govRun || r.Type != directory.TypeEntry
		recs = append(recs, r)
		sealedIn[want] = body[32:]
		received++
		// A session asks for up to SyncMaxRecords records of up to
		// MaxSealedBytes each: kept whole, sealed and opened, until the
		// end, a responder making up large records would have this node
		// hold hundreds of MiB per session (found in review, session 39).
		if held += len(body); held >= s.applyBytes {
			held = 0
			if err := apply(); err != nil {
				fault = err
				break
			}
		}
	}
	if fault == nil {
		fault = c.finish()
	}
	if err := apply(); err != nil {
		if errors.Is(err, ErrClosed) {
			return pulled, false, ErrClosed
		}
		if fault == nil {
			fault = err
		}
	}
	keyEpochAfter, _, _ := n.keyringSnapshot().Current()
	// More is waiting if the list was cut and this session brought
	// records, whether the state took them or parked or refused them:
	// none of those is asked for again while it is parked or remembered
	// as refused, so the next session asks for others. Counting only the
	// records taken would end the sessions when one brought nothing but
	// records waiting for their authority (a new reader's node pulls
	// grants before the membership, pages before their epoch).
	// (recs is emptied by each apply: count what was received.)
	return pulled, truncated && received > 0 || keyEpochAfter != keyEpochBefore, fault
}

// A list item is a hash and its record's rank (syncRank): 0 a charter; 1
// approvals, memberships, revocations, epochs and heartbeats; 2 reader
// grants and epoch pages; 3 evidence; 4 entries.
const (
	listItem       = 32 + 1
	kindGovernance = 1 // a membership's rank, say
	kindPage       = 2 // an epoch page's, in a page list
	kindEntry      = 4
)

// list is the list message for bucket b of offer: each hash with its
// record's rank, so that the initiator can ask for what others depend on
// first.
// Hashes whose record the state no longer holds (dropped since the offer
// was made) are left out: they would be served as gone, and their kind
// is not known.
func (s *syncer) list(b byte, offer *digest) []byte {
	hs := offer.Hashes[offer.Start[b]:offer.Start[int(b)+1]]
	hs = hs[:min(len(hs), maxHashesPerBucket)]
	out := make([]byte, 5, 5+listItem*len(hs))
	out[0] = b
	cnt := 0
	for _, h := range hs {
		r, ok := s.n.state.Record(h)
		if !ok {
			continue
		}
		out = append(append(out, h[:]...), byte(syncRank(r)))
		cnt++
	}
	binary.BigEndian.PutUint32(out[1:], uint32(cnt))
	return out
}

// syncRank is the order a responder sends records in: governance in the
// order a state applies it, then entries, then hashes it no longer holds.
func syncRank(r *directory.Record) int {
	switch {
	case r == nil:
		return 5
	case r.Type == directory.TypeEntry:
		return 4
	}
	return directory.ApplyRank(r.Type)
}

// serve answers a peer's session.
func (s *syncer) serve(st network.Stream) {
	n := s.n
	p := st.Conn().RemotePeer()
	defer st.Reset() // no-op after a clean Close
	// Beyond a few streams per peer there is nothing an honest peer needs
	// (it runs one session with us at a time): refuse at once rather than
	// hold the stream until the hello deadline.
	if !s.open(p) {
		return
	}
	defer s.closeStream(p)
	defer context.AfterFunc(n.ctx, func() { st.Reset() })()
	// The hello comes first and at once. Until its proof checks, the
	// stream is a stranger's: it gets a short deadline and takes no
	// session slot, so peers without the network ID that open streams
	// and say nothing cannot crowd out the members (the resource
	// manager bounds how many such streams are open at once).
	st.SetDeadline(time.Now().Add(min(helloTimeout, n.cfg.SyncTimeout)))
	c := newWire(st)

	body, err := c.expect(msgHello, 32+helloFixedLen+8*maxHelloKeys)
	if err != nil || len(body) < 32 {
		return
	}
	if !hmac.Equal(body[:32], s.proof('I', p, n.host.ID())) {
		// Not a member of this network, or of another one: say nothing.
		return
	}
	hello, ok := parseHello(body[32:], n.cfg.Network, p, n.host.ID())
	if !ok {
		s.refuse("hello-"+string(p), "sync hello refused: malformed or its signature does not verify", "peer", p)
		return
	}
	who := hello.key.Hex()
	skew := directory.Policy{}.ClockSkewBound()
	if ch := n.state.Charter(); ch != nil {
		skew = ch.Policy.ClockSkewBound()
	}
	if d := n.cfg.Now().Sub(time.Unix(hello.unix, 0)); d > skew || d < -skew {
		s.refuse("time-"+who, "sync hello refused: dated outside the clock-skew window", "peer", p, "key", directory.Fingerprint(hello.key), "off_by", d.Round(time.Second))
		return
	}
	if role, ok := n.admittedRole(hello.key); !ok {
		s.refuse("role-"+who, "sync hello refused: the key is not an admitted, unrevoked steward, member or reader here",
			"peer", p, "key", directory.Fingerprint(hello.key), "is", role)
		return
	}
	// The budget first: a hello refused for it must not take a place in
	// the replay cache, or one key could fill the cache for everyone.
	if !s.budgets.take(hello.key, p, 1, true) {
		s.refuse("sessions-"+who, "sync session refused: the key or peer is over its session budget",
			"peer", p, "key", directory.Fingerprint(hello.key), "sessions_per_minute", SyncSessionsPerMinute)
		return
	}
	keep := 2*skew + time.Minute
	if !s.replays.fresh(hello.key, hello.nonce, keep, perKeyHellos(s.budgets.limits(), keep)) {
		s.refuse("replay-"+who, "sync hello refused: replayed, or the key holds its share of the replay cache", "peer", p, "key", directory.Fingerprint(hello.key))
		return
	}
	if !s.acquire(p) {
		return
	}
	defer s.release(p)
	st.SetDeadline(time.Now().Add(n.cfg.SyncTimeout))
	kr := n.sealingKeyring()
	current, _, _ := kr.Current()
	var common uint64
	var key directory.ReadKey
	haveCommon := false
	for _, e := range hello.epochs {
		if k, ok := kr[e]; ok && (!haveCommon || e > common) {
			common, key, haveCommon = e, k, true
		}
	}
	offer := &digest{}
	if haveCommon {
		offer = s.offerDigest(common)
	}
	ack := s.proof('R', p, n.host.ID())
	ack = binary.BigEndian.AppendUint32(ack, uint32(len(offer.Hashes)))
	ack = append(ack, offer.Root[:]...)
	if err := c.send(msgHelloAck, ack); err != nil {
		return
	}
	// charge draws what is about to be sent from the key's and the peer's
	// budget; over budget, the session ends there (the peer keeps what
	// it got and may come back when its budget has refilled).
	charge := func(size int) bool {
		if s.budgets.take(hello.key, p, size, false) {
			return true
		}
		wait := s.budgets.refillTime(hello.key, p, resumeBytes)
		s.refuse("bytes-"+who, "sync session cut: the key or peer is over its byte budget",
			"peer", p, "key", directory.Fingerprint(hello.key), "bytes_per_minute", SyncBytesPerMinute, "burst", SyncBytesBurst, "resume_in", wait)
		// Say when to come back, rather than reset the stream: a reset
		// reads as a failure, and the initiator's doubling back-off
		// would keep it away long after the budget refilled.
		secs := uint32(min(max(wait.Seconds(), 1), maxBusyWait.Seconds()) + 0.999)
		if c.send(msgBusy, binary.BigEndian.AppendUint32(nil, secs)) == nil {
			// Then wait for the initiator to hang up: a reset sent first
			// may discard the busy message still in flight (QUIC drops
			// unacknowledged data on a reset), and a reset reads as a
			// failure after all.
			st.CloseWrite()
			st.SetReadDeadline(time.Now().Add(helloTimeout))
			io.Copy(io.Discard, io.LimitReader(st, maxControlFrame))
		}
		return false
	}
	served := map[directory.Hash]struct{}{} // no record goes twice in one session
	sentBytes := 0
	for range maxRequestsPerSession {
		typ, body, err := c.recv(maxControlFrame)
		if err != nil {
			return
		}
		switch typ {
		case msgDone:
			// Close only after the initiator's own Close (its FIN, read
			// here as EOF): on QUIC a Close also stops reading, and one
			// that reached the initiator before its Close made that
			// Close fail ("close called for canceled stream"), a clean
			// session read as a failed one (a CI flake).
			st.CloseWrite()
			st.SetReadDeadline(time.Now().Add(helloTimeout))
			io.Copy(io.Discard, io.LimitReader(st, maxControlFrame))
			st.Close()
			return
		case msgWantBuckets:
			table := offer.BucketTable()
			if !charge(len(table)) {
				return
			}
			err = c.send(msgBuckets, table)
		case msgWantLists:
			if len(body) == 0 || len(body) > 256 {
				return
			}
			for i, b := range body {
				if i > 0 && b <= body[i-1] {
					return
				}
				out := s.list(b, offer)
				if !charge(len(out)) {
					return
				}
				if err = c.send(msgList, out); err != nil {
					return
				}
			}
		case msgWantPages:
			// The record hashes of one rotation's pages this node holds
			// and offers: a node missing some asks every peer for them
			// at once (pagefetch.go), without comparing digests.
			if len(body) != 8+16 {
				return
			}
			var rotation [16]byte
			copy(rotation[:], body[8:])
			var hs []directory.Hash
			for _, h := range n.state.PageRecords(binary.BigEndian.Uint64(body), rotation, maxHashesPerBucket) {
				if offer.has(h) {
					hs = append(hs, h)
				}
			}
			out := binary.BigEndian.AppendUint32(make([]byte, 0, 4+32*len(hs)), uint32(len(hs)))
			for _, h := range hs {
				out = append(out, h[:]...)
			}
			if !charge(len(out)) {
				return
			}
			err = c.send(msgPages, out)
		case msgWantRecords:
			if len(body) < 4 {
				return
			}
			cnt := int(binary.BigEndian.Uint32(body))
			if cnt > maxRecordsPerSession || len(body) != 4+32*cnt {
				return
			}
			// Governance before entries, in the order a state applies
			// them, so that an initiator on a slow link has revocations
			// and epochs at the start of a long session, not the end.
			type want struct {
				h    directory.Hash
				r    *directory.Record
				rank int
			}
			wants := make([]want, cnt)
			for i := range wants {
				copy(wants[i].h[:], body[4+32*i:])
				wants[i].r, _ = n.state.Record(wants[i].h)
				wants[i].rank = syncRank(wants[i].r)

			}
			slices.SortStableFunc(wants, func(a, b want) int { return a.rank - b.rank })
			for _, wt := range wants {
				h, r := wt.h, wt.r
				out := h[:]
				_, again := served[h]
				if r != nil && !again && offer.has(h) && sentBytes < maxBytesPerSession {
					// Resealed under the newest key both hold; the offer
					// already excludes records stored under a newer one.
					sealed := s.sealedFor(r, h, common, key, current, hello.epochs)
					if !charge(32 + len(sealed)) {
						c.flush()
						return
					}
					served[h] = struct{}{}
					sentBytes += len(sealed)
					out = append(out[:32:32], sealed...)
				} else if !charge(32) {
					// A hash asked again gets the "gone" frame, which
					// still costs: a request of the same hash over and
					// over must not be free either.
					c.flush()
					return
				}
				if err = c.send(msgRecord, out); err != nil {
					return
				}
			}
		default:
			return
		}
		if err != nil || c.flush() != nil {
			return
		}
	}
}

// refuse logs why a peer was refused, once per why and key (or peer) every
// budgetLogEvery: a peer that keeps trying must not flood the log.
func (s *syncer) refuse(who, msg string, args ...any) {
	if s.budgets.shouldLog(who) {
		s.n.log.Warn(msg, args...)
	}
}

// open counts a sync stream from p and reports whether it is within the
// per-peer limit.
func (s *syncer) open(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opening[p] >= maxInboundPerPeer {
		return false
	}
	s.opening[p]++
	return true
}

func (s *syncer) closeStream(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.opening[p]--; s.opening[p] <= 0 {
		delete(s.opening, p)
	}
}

func (s *syncer) acquire(p peer.ID) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.inbound[p] >= maxInboundPerPeer || s.inTotal >= maxInboundTotal {
		return false
	}
	s.inbound[p]++
	s.inTotal++
	return true
}

func (s *syncer) release(p peer.ID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.inTotal--
	if s.inbound[p]--; s.inbound[p] <= 0 {
		delete(s.inbound, p)
	}
}

// ownDigest is the digest of everything the node stores, cached until the
// store changes.
func (s *syncer) ownDigest() *digest {
	s.digestMu.Lock()
	defer s.digestMu.Unlock()
	return s.ownDigestLocked()
}

func (s *syncer) ownDigestLocked() *digest {
	n := s.n
	n.mu.Lock()
	ver := n.storedVer
	if s.digest != nil && s.digestVer == ver {
		n.mu.Unlock()
		return s.digest
	}
	hs := make([]directory.Hash, 0, len(n.stored))
	var maxFloor uint64
	for h, e := range n.stored {
		hs = append(hs, h)
		maxFloor = max(maxFloor, e)
	}
	n.mu.Unlock()
	s.digest, s.digestVer, s.maxFloor = newDigest(hs), ver, maxFloor
	return s.digest
}

// offerDigest is the digest of what may be sealed under the key of epoch
// common: records stored under that epoch or an older one.
func (s *syncer) offerDigest(common uint64) *digest {
	s.digestMu.Lock()
	own := s.ownDigestLocked()
	if common >= s.maxFloor {
		s.digestMu.Unlock()
		return own
	}
	s.digestMu.Unlock()
	n := s.n
	n.mu.Lock()
	var hs []directory.Hash
	for h, e := range n.stored {
		if e <= common {
			hs = append(hs, h)
		}
	}
	n.mu.Unlock()
	return newDigest(hs)
}

// digest summarizes a set of record hashes in 256 buckets by first byte.
// digest is a sync digest (directory.SyncDigest) with the node's helpers.
type digest struct{ *directory.SyncDigest }

func newDigest(hs []directory.Hash) *digest {
	return &digest{directory.NewSyncDigest(hs)}
}

func (d *digest) has(h directory.Hash) bool {
	b := int(h[0])
	part := d.Hashes[d.Start[b]:d.Start[b+1]]
	i := sort.Search(len(part), func(i int) bool { return bytes.Compare(part[i][:], h[:]) >= 0 })
	return i < len(part) && part[i] == h
}

// wire frames messages on a stream: a uvarint length, a type byte, a body.
type wire struct {
	s network.Stream
	r *bufio.Reader
	w *bufio.Writer
}

func newWire(s network.Stream) *wire {
	return &wire{s: s, r: bufio.NewReader(s), w: bufio.NewWriter(s)}
}

func (c *wire) send(typ byte, body []byte) error {
	var hdr [binary.MaxVarintLen64 + 1]byte
	k := binary.PutUvarint(hdr[:], uint64(len(body)+1))
	hdr[k] = typ
	if _, err := c.w.Write(hdr[:k+1]); err != nil {
		return err
	}
	if _, err := c.w.Write(body); err != nil {
		return err
	}
	if typ == msgRecord {
		return nil // flushed by the buffer as it fills, and after the last
	}
	return c.w.Flush()
}

func (c *wire) flush() error { return c.w.Flush() }

func (c *wire) recv(limit int) (byte, []byte, error) {
	size, err := binary.ReadUvarint(c.r)
	if err != nil {
		return 0, nil, err
	}
	if size == 0 || size > uint64(limit)+1 {
		return 0, nil, fmt.Errorf("sync: frame of %d bytes, limit %d", size, limit)
	}
	buf := make([]byte, size)
	if _, err := io.ReadFull(c.r, buf); err != nil {
		return 0, nil, err
	}
	return buf[0], buf[1:], nil
}

func (c *wire) expect(typ byte, limit int) ([]byte, error) {
	t, body, err := c.recv(limit)
	if err != nil {
		return nil, err
	}
	if t == msgBusy && typ != msgHello && typ != msgHelloAck {
		// Only a responder past the hello says it; its wait is bounded
		// here, so a peer cannot put this node off for longer.
		if len(body) != 4 {
			return nil, fmt.Errorf("%w: busy message of %d bytes", errMisbehaving, len(body))
		}
		secs := time.Duration(binary.BigEndian.Uint32(body)) * time.Second
		return nil, &busyError{wait: min(max(secs, time.Second), maxBusyWait)}
	}
	if t != typ {
		return nil, fmt.Errorf("%w: message %d, want %d", errMisbehaving, t, typ)
	}
	return body, nil
}

// finish ends a session cleanly. Once done is sent, the session has
// everything it asked for, so an error from Close says only that the
// responder stopped reading first (a responder of an earlier version
// closes on done without waiting for this side's Close, and on QUIC its
// Close cancels this side's writing): it is not a failed session.
func (c *wire) finish() error {
	if err := c.send(msgDone, nil); err != nil {
		return err
	}
	c.s.Close()
	return nil
}

func randFloat() float64 { return rand.Float64() }

func shuffle[T any](s []T) { rand.Shuffle(len(s), func(i, j int) { s[i], s[j] = s[j], s[i] }) }

// sealedFor is what serve sends of record r (hash h) to a peer whose newest
// key in common with this node is epoch's: r sealed under that key. An
// epoch page is sent as stored instead, under the key of the epoch before
// its own (sealFor), which is the key it travels under on gossip too, if
// the peer holds that key (held, the epochs its hello listed). What is
// stored is the sealing its publisher gossiped whenever this node took it
// as it came (sealReusing): a node that took it by sync during a rotation
// gossips it on (regossipPages), and the peers that hold it drop it
// unopened as a message already seen, not as a duplicate after decrypting
// 64 KiB.
func (s *syncer) sealedFor(r *directory.Record, h directory.Hash, epoch uint64, key directory.ReadKey, current uint64, held []uint64) []byte {
	if r.Type == directory.TypeEpochPage {
		s.n.mu.Lock()
		e, ok := s.n.stored[h]
		s.n.mu.Unlock()
		if k, have := s.n.keyringSnapshot()[e]; ok && have && e <= epoch && slices.Contains(held, e) {
			if b, err := s.n.store.ds.Get(s.n.ctx, recordKey(h)); err == nil {
				if tag, ok := directory.SealedTag(b); ok && tag == k.Tag() {
					return b
				}
			}
		}
	}
	return s.seals.get(r, h, epoch, key, current)
}
