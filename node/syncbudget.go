package node

import (
	"crypto/rand"
	"encoding/binary"
	"math"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/time/rate"

	"github.com/ceiba-network/ceiba/directory"
)

// What one key (and, separately, one peer ID) may draw from this node's
// sync server. A key, not only a peer ID, carries the budget: peer IDs are
// free to make, admitted keys are not. The numbers let a fresh node pull a
// directory of several thousand typical entries in its first burst and
// resume from there (sync is resumable), while capping what any one
// reader can make a node send at
//
//	SyncBytesBurst + SyncBytesPerMinute × minutes
//
// (40 MiB in the first minute, 8 MiB a minute after) however it phrases its
// requests. Everything sent after the hello counts: bucket tables, hash
// lists and sealed records.
const (
	SyncBytesPerMinute = 8 << 20
	SyncBytesBurst     = 32 << 20
	// Sessions are charged separately: each costs a signature check and a
	// digest, whatever it pulls.
	SyncSessionsPerMinute = 120
	SyncSessionsBurst     = 30

	// helloNonceLen and helloFixedLen describe the hello after its network
	// proof: key, time, nonce, signature, epoch count.
	helloNonceLen = 16
	helloFixedLen = 32 + 8 + helloNonceLen + 64 + 2

	// sealCacheBytes bounds the sealed copies kept so a record is sealed
	// once per epoch, not once per request.
	sealCacheBytes   = 32 << 20
	sealCacheEntries = 1 << 16

	// maxSeenHellos bounds the replay cache; a hello is remembered for
	// twice the clock-skew window it is accepted in.
	maxSeenHellos = 1 << 17
	// maxBuckets bounds the budget maps; idle (full) buckets are dropped
	// first when they grow past it.
	maxBuckets = 1 << 14
	// resumeBytes is what a key or peer cut off for its byte budget must
	// have again before it is told to come back: enough for a session's
	// hash lists and a good share of records, so that a large pull
	// resumes in a few sessions rather than a stream of tiny ones.
	resumeBytes = 2 << 20
	// budgetLogEvery is how often one key or peer's refusals are logged.
	budgetLogEvery = 10 * time.Minute
)

// syncLimits are the budgets in force; tests shrink them to measure.
type syncLimits struct {
	bytesPerSec    rate.Limit
	bytesBurst     int
	sessionsPerSec rate.Limit
	sessionsBurst  int
}

func defaultSyncLimits() syncLimits {
	return syncLimits{
		bytesPerSec:    rate.Limit(float64(SyncBytesPerMinute) / 60),
		bytesBurst:     SyncBytesBurst,
		sessionsPerSec: rate.Limit(float64(SyncSessionsPerMinute) / 60),
		sessionsBurst:  SyncSessionsBurst,
	}
}

type bucketPair struct{ bytes, sessions *rate.Limiter }

// budgets holds the token buckets of every key and peer that was served.
type budgets struct {
	mu     sync.Mutex
	lim    syncLimits
	keys   map[directory.PublicKey]*bucketPair
	peers  map[peer.ID]*bucketPair
	logged map[string]time.Time
}

func newBudgets() *budgets {
	return &budgets{
		lim:    defaultSyncLimits(),
		keys:   map[directory.PublicKey]*bucketPair{},
		peers:  map[peer.ID]*bucketPair{},
		logged: map[string]time.Time{},
	}
}

// limits returns the budgets in force.
func (b *budgets) limits() syncLimits {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.lim
}

func (b *budgets) pair() *bucketPair {
	return &bucketPair{
		bytes:    rate.NewLimiter(b.lim.bytesPerSec, b.lim.bytesBurst),
		sessions: rate.NewLimiter(b.lim.sessionsPerSec, b.lim.sessionsBurst),
	}
}

func bucketsFor[K comparable](b *budgets, m map[K]*bucketPair, k K, now time.Time) *bucketPair {
	if p, ok := m[k]; ok {
		return p
	}
	if len(m) >= maxBuckets {
		// A full bucket holds nothing worth remembering: dropping it
		// and making a fresh one later gives the same budget.
		for k, p := range m {
			if p.bytes.TokensAt(now) >= float64(p.bytes.Burst()) && p.sessions.TokensAt(now) >= float64(p.sessions.Burst()) {
				delete(m, k)
			}
		}
	}
	if len(m) >= maxBuckets {
		return nil
	}
	p := b.pair()
	m[k] = p
	return p
}

// take draws n tokens from both the key's and the peer's bucket, or from
// neither. It reports false when either is short, or when the maps are
// full of busy buckets (a flood of keys and peers all at work: refuse).
func (b *budgets) take(k directory.PublicKey, p peer.ID, n int, sessions bool) bool {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	kb, pb := bucketsFor(b, b.keys, k, now), bucketsFor(b, b.peers, p, now)
	if kb == nil || pb == nil {
		return false
	}
	pick := func(bp *bucketPair) *rate.Limiter {
		if sessions {
			return bp.sessions
		}
		return bp.bytes
	}
	kr := pick(kb).ReserveN(now, n)
	if !kr.OK() || kr.DelayFrom(now) > 0 {
		kr.CancelAt(now)
		return false
	}
	pr := pick(pb).ReserveN(now, n)
	if !pr.OK() || pr.DelayFrom(now) > 0 {
		pr.CancelAt(now)
		kr.CancelAt(now)
		return false
	}
	return true
}

// refillTime is how long until both k's and p's byte buckets hold n
// tokens (at most their burst).
func (b *budgets) refillTime(k directory.PublicKey, p peer.ID, n int) time.Duration {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var wait time.Duration
	for _, bp := range []*bucketPair{b.keys[k], b.peers[p]} {
		if bp == nil {
			continue
		}
		short := float64(min(n, bp.bytes.Burst())) - bp.bytes.TokensAt(now)
		if short > 0 && bp.bytes.Limit() > 0 {
			wait = max(wait, time.Duration(short/float64(bp.bytes.Limit())*float64(time.Second)))
		}
	}
	return wait
}

// shouldLog reports whether a refusal for who is worth a log line: the
// first one, then one per budgetLogEvery, so a peer hammering the node
// cannot flood its log.
func (b *budgets) shouldLog(who string) bool {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if t, ok := b.logged[who]; ok && now.Sub(t) < budgetLogEvery {
		return false
	}
	if len(b.logged) >= maxBuckets {
		for w, t := range b.logged {
			if now.Sub(t) >= budgetLogEvery {
				delete(b.logged, w)
			}
		}
		if len(b.logged) >= maxBuckets {
			return false
		}
	}
	b.logged[who] = now
	return true
}

// helloReplays remembers accepted hellos for as long as their time stamp
// could pass the window check, so a captured hello cannot open a second
// session, later or elsewhere (the peer IDs it binds stop it elsewhere).
//
// It is kept per key, and no key may hold more than its session budget
// lets it open while an entry is kept: a cache shared by all keys would
// otherwise let one key fill it and lock every other key out.
type helloReplays struct {
	mu    sync.Mutex
	seen  map[directory.PublicKey]map[[helloNonceLen]byte]time.Time
	total int
	// max bounds the entries of all keys together (maxSeenHellos when
	// zero); tests shrink it.
	max int
}

// purge drops the expired entries of k, or of every key when all is set.
func (r *helloReplays) purge(k directory.PublicKey, all bool, now time.Time) {
	drop := func(k directory.PublicKey, m map[[helloNonceLen]byte]time.Time) {
		for id, t := range m {
			if !now.Before(t) {
				delete(m, id)
				r.total--
			}
		}
		if len(m) == 0 {
			delete(r.seen, k)
		}
	}
	if !all {
		if m, ok := r.seen[k]; ok {
			drop(k, m)
		}
		return
	}
	for k, m := range r.seen {
		drop(k, m)
	}
}

// fresh records (k, nonce) and reports whether it was not seen before.
// perKey is how many hellos k's session budget lets it open in keep.
func (r *helloReplays) fresh(k directory.PublicKey, nonce []byte, keep time.Duration, perKey int) bool {
	var id [helloNonceLen]byte
	copy(id[:], nonce)
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[directory.PublicKey]map[[helloNonceLen]byte]time.Time{}
	}
	limit := r.max
	if limit <= 0 {
		limit = maxSeenHellos
	}
	m := r.seen[k]
	if t, ok := m[id]; ok && now.Before(t) {
		return false
	}
	if len(m) >= perKey {
		r.purge(k, false, now)
		if m = r.seen[k]; len(m) >= perKey {
			// Forgetting one could let it replay; refusing costs this
			// key, and only this key, a retry.
			return false
		}
	}
	if r.total >= limit {
		r.purge(k, true, now)
		m = r.seen[k]
		// Still full: the keys holding more than an equal share are
		// refused, so that the others still get in. What they add
		// beyond the limit is bounded by the admitted keys times
		// perKey.
		if r.total >= limit && len(r.seen) > 0 && len(m) >= r.total/len(r.seen) {
			return false
		}
	}
	if m == nil {
		m = map[[helloNonceLen]byte]time.Time{}
		r.seen[k] = m
	}
	m[id] = now.Add(keep)
	r.total++
	return true
}

// perKeyHellos is how many sessions lim lets one key open within keep:
// the most replay-cache entries it can honestly need.
func perKeyHellos(lim syncLimits, keep time.Duration) int {
	n := float64(lim.sessionsBurst) + float64(lim.sessionsPerSec)*keep.Seconds() + 1
	if n > maxSeenHellos || math.IsInf(n, 0) || math.IsNaN(n) {
		return maxSeenHellos
	}
	return int(n)
}

// helloTranscript is what the initiator signs: the network, both peer IDs
// (so the hello is worth nothing on another connection), the signing key,
// the time and a fresh nonce (so it is worth nothing later), and the epochs
// it claims.
func helloTranscript(net directory.NetworkID, initiator, responder peer.ID, key directory.PublicKey, unix int64, nonce []byte, epochs []byte) []byte {
	return directory.SessionTranscript(net, []byte(initiator), []byte(responder), key, unix, nonce, epochs)
}

// signedHello is the hello body after the network proof.
func signedHello(id *directory.Identity, net directory.NetworkID, initiator, responder peer.ID, now time.Time, epochs []uint64) []byte {
	var nonce [helloNonceLen]byte
	rand.Read(nonce[:])
	return directory.SyncHello(id, net, []byte(initiator), []byte(responder), now, nonce[:], epochs)
}

// parsedHello is a hello whose signature checked.
type parsedHello struct {
	key    directory.PublicKey
	unix   int64
	nonce  []byte
	epochs []uint64
}

// parseHello checks the signed part of a hello (body after the network
// proof) and returns it; ok is false for anything malformed or forged.
func parseHello(body []byte, net directory.NetworkID, initiator, responder peer.ID) (parsedHello, bool) {
	if len(body) < helloFixedLen {
		return parsedHello{}, false
	}
	var h parsedHello
	copy(h.key[:], body[:32])
	h.unix = int64(binary.BigEndian.Uint64(body[32:]))
	h.nonce = body[40 : 40+helloNonceLen]
	sig := body[40+helloNonceLen : 40+helloNonceLen+64]
	enc := body[helloFixedLen-2:]
	nk := int(binary.BigEndian.Uint16(enc))
	if nk > maxHelloKeys || len(enc) != 2+8*nk {
		return parsedHello{}, false
	}
	if !directory.VerifyTranscript(h.key, directory.SyncHelloDomain, helloTranscript(net, initiator, responder, h.key, h.unix, h.nonce, enc), sig) {
		return parsedHello{}, false
	}
	for i := range nk {
		h.epochs = append(h.epochs, binary.BigEndian.Uint64(enc[2+8*i:]))
	}
	return h, true
}

// admittedRole says what k is in the node's directory: a steward of the
// current charter, a member or a reader, none of them revoked. Only these
// may sync from the node.
func (n *Node) admittedRole(k directory.PublicKey) (string, bool) { return n.state.AdmittedRole(k) }

type sealKey struct {
	h     directory.Hash
	epoch uint64
}

// sealCache keeps sealed copies of records, bounded by bytes, so that
// serving a record to many peers (or one peer many times) seals it once
// per epoch. A copy of the same sealed bytes goes to every requester, as
// gossip already does; connections are encrypted, so nothing on the wire
// links them.
type sealCache struct {
	mu    sync.Mutex
	lru   *simplelru.LRU[sealKey, []byte]
	bytes int
	epoch uint64 // newest epoch the cache has seen; older entries are dropped
}

func newSealCache() *sealCache {
	c := &sealCache{}
	l, err := simplelru.NewLRU(sealCacheEntries, func(_ sealKey, v []byte) { c.bytes -= len(v) })
	if err != nil {
		panic(err) // only for a size below 1
	}
	c.lru = l
	return c
}

// get returns r sealed under epoch with key, sealing it at most once while
// the copy stays cached. current is the node's newest key epoch: when it
// moves, every cached copy goes, since none will be asked for again.
func (c *sealCache) get(r *directory.Record, h directory.Hash, epoch uint64, key directory.ReadKey, current uint64) []byte {
	k := sealKey{h, epoch}
	c.mu.Lock()
	if current != c.epoch {
		c.lru.Purge()
		c.epoch = current
	}
	if v, ok := c.lru.Get(k); ok {
		c.mu.Unlock()
		return v
	}
	c.mu.Unlock()
	sealed := directory.Seal(r, key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.epoch != current || len(sealed) > sealCacheBytes {
		return sealed
	}
	if !c.lru.Contains(k) {
		c.lru.Add(k, sealed)
		c.bytes += len(sealed)
		for c.bytes > sealCacheBytes {
			c.lru.RemoveOldest()
		}
	}
	return sealed
}
