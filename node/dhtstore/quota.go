package dhtstore

import (
	"context"
	"crypto/sha256"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	record "github.com/libp2p/go-libp2p-record"
	recpb "github.com/libp2p/go-libp2p-record/pb"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"google.golang.org/protobuf/proto"

	"github.com/ceiba-network/ceiba/directory"
)

// What a node holds in the DHT for others. A DHT server stores what peers
// put to it; without these bounds any holder of the read key (a reader)
// could fill its disk. Only keys the node's directory admits may use it,
// within their own quota, and everything together stays under a total.
// The node's own records (signed by its identity) are always kept, and
// count toward the totals.
const (
	// MaxTotalRecords and MaxTotalBytes bound everything the DHT store
	// holds (bytes as written to disk, record envelope included).
	MaxTotalRecords = 32768
	MaxTotalBytes   = 512 << 20
	// MaxSignerRecords and MaxSignerBytes bound what one admitted signer
	// (steward or member) may have this node hold.
	MaxSignerRecords = 2048
	MaxSignerBytes   = 32 << 20
	// MaxPeerRecords and MaxPeerBytes bound what one remote peer ID may
	// have put here, whoever signed it.
	MaxPeerRecords = 4096
	MaxPeerBytes   = 64 << 20
	// Records whose signer this node does not know as admitted (a genesis
	// charter on a node that has none yet, a key admitted a moment ago)
	// share a small pending pool; no peer may take more than its part.
	MaxPendingRecords     = 64
	MaxPendingBytes       = 2 << 20
	MaxPendingPeerRecords = 8
	MaxPendingPeerBytes   = 256 << 10
	// A reader may have the DHT hold its own revocation and nothing else.
	MaxReaderRecords = 2

	// maxAttributions bounds the remote puts remembered between kad-dht's
	// request hook and the datastore write.
	maxAttributions = 4096
	attributionTTL  = time.Minute
)

// ErrClosed means the store was closed.
var ErrClosed = errors.New("dhtstore: closed")

// ErrQuota means the store refused to hold a value: its signer is not
// admitted, it is larger than the charter allows, or a quota is full.
var ErrQuota = errors.New("dhtstore: value refused by the storage policy")

// Role is what a key is in the node's directory.
type Role int

// Roles, from least to most trusted.
const (
	RoleNone      Role = iota // unknown or revoked
	RoleReader                // an admitted, unrevoked reader
	RolePublisher             // a steward of the current charter or an admitted, unrevoked member
)

// Authority is the node's directory as the storage policy sees it. It is
// called on every value the store is asked to hold, from DHT handler
// goroutines, so it must be cheap and safe for concurrent use.
type Authority interface {
	// Role is what k is in the directory now.
	Role(k directory.PublicKey) Role
	// MaxRecordBytes is the current charter's max_record_bytes.
	MaxRecordBytes() int
}

// StateAuthority answers the storage policy from a directory state: the
// role its admissions give a key, and its current charter's
// max_record_bytes (the default before any charter).
type StateAuthority struct{ State *directory.State }

func (a StateAuthority) Role(k directory.PublicKey) Role {
	switch role, ok := a.State.AdmittedRole(k); {
	case !ok:
		return RoleNone
	case role == "reader":
		return RoleReader
	}
	return RolePublisher
}

func (a StateAuthority) MaxRecordBytes() int {
	if c := a.State.Charter(); c != nil {
		return c.Policy.MaxRecord()
	}
	return directory.DefaultMaxRecordBytes
}

// Usage is what the DHT store holds.
type Usage struct {
	Records int   `json:"records"`
	Bytes   int64 `json:"bytes"`
	// Pending counts the records held from signers not (yet) admitted.
	Pending int `json:"pending"`
	// Refused counts the puts refused by the storage policy since start.
	Refused int64 `json:"refused"`
	// Unserved counts the GET_VALUE requests refused since start because
	// the asker had drawn its budget (Options.ChargeServed).
	Unserved int64 `json:"unserved"`
	// Providers counts the provider records held (the rendezvous), and
	// ProvidersRefused those refused for the bounds since start.
	Providers        int   `json:"providers"`
	ProvidersRefused int64 `json:"providers_refused"`
}

// quotaLimits are the bounds in force; tests shrink them to reach them.
type quotaLimits struct {
	totalN, signerN, peerN, pendingN, pendingPeerN, readerN int
	totalB, signerB, peerB, pendingB, pendingPeerB          int64
}

var defaultQuotaLimits = quotaLimits{
	totalN: MaxTotalRecords, totalB: MaxTotalBytes,
	signerN: MaxSignerRecords, signerB: MaxSignerBytes,
	peerN: MaxPeerRecords, peerB: MaxPeerBytes,
	pendingN: MaxPendingRecords, pendingB: MaxPendingBytes,
	pendingPeerN: MaxPendingPeerRecords, pendingPeerB: MaxPendingPeerBytes,
	readerN: MaxReaderRecords,
}

type held struct {
	size    int64
	signer  directory.PublicKey
	from    peer.ID // "" for local writes and records found at start
	pending bool
}

type tally struct {
	n     int
	bytes int64
}

func (t *tally) add(size int64, sign int) {
	t.n += sign
	t.bytes += int64(sign) * size
}

type attribution struct {
	from peer.ID
	at   time.Time
}

// quotaStore is the datastore kad-dht keeps values in, wrapped so that
// every write passes the storage policy and everything held is counted.
// It is the one place that sees each value written, whoever asked for it
// (a remote PUT_VALUE, our own Put, kad-dht's fix-ups); kad-dht's request
// hook tells it which remote peer a PUT_VALUE came from.
type quotaStore struct {
	ds.Batching
	val  *validator
	auth Authority
	self directory.PublicKey
	log  *slog.Logger

	mu        sync.Mutex
	closed    bool // after Store.Close: kad-dht handlers still in flight must not write
	lim       quotaLimits
	held      map[ds.Key]held
	total     tally
	pending   tally
	bySigner  map[directory.PublicKey]*tally
	byPeer    map[peer.ID]*tally
	pendingBy map[peer.ID]*tally
	refused   int64
	logged    map[string]time.Time
	attrib    map[[32]byte]attribution // sha256(key, value) → remote putter

	chargeServed func(p peer.ID, n int) bool // Options.ChargeServed
	unserved     int64
}

func newQuotaStore(inner ds.Batching, val *validator, auth Authority, self directory.PublicKey, log *slog.Logger) *quotaStore {
	return &quotaStore{
		Batching:  inner,
		val:       val,
		auth:      auth,
		self:      self,
		log:       log,
		lim:       defaultQuotaLimits,
		held:      map[ds.Key]held{},
		bySigner:  map[directory.PublicKey]*tally{},
		byPeer:    map[peer.ID]*tally{},
		pendingBy: map[peer.ID]*tally{},
		logged:    map[string]time.Time{},
		attrib:    map[[32]byte]attribution{},
	}
}

func attribKey(key string, value []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(key))
	h.Write([]byte{0})
	h.Write(value)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// onRequest is kad-dht's request hook: it remembers who sent each
// PUT_VALUE, so the write that follows is charged to that peer, and
// charges each GET_VALUE for a value held here to its asker.
func (q *quotaStore) onRequest(_ context.Context, s network.Stream, req *pb.Message) {
	if req.GetType() == pb.Message_GET_VALUE {
		q.chargeGet(s.Conn().RemotePeer(), req)
		return
	}
	if req.GetType() != pb.Message_PUT_VALUE || req.GetRecord() == nil {
		return
	}
	k := attribKey(string(req.GetRecord().GetKey()), req.GetRecord().GetValue())
	now := time.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.attrib) >= maxAttributions {
		for x, a := range q.attrib {
			if now.Sub(a.at) > attributionTTL {
				delete(q.attrib, x)
			}
		}
		if len(q.attrib) >= maxAttributions {
			// Puts that fail validation leave their mark behind; with
			// the map full of fresh ones, forget one at random rather
			// than grow. An unattributed remote write is still held to
			// the signer and total quotas.
			for x := range q.attrib {
				delete(q.attrib, x)
				break
			}
		}
	}
	q.attrib[k] = attribution{from: s.Conn().RemotePeer(), at: now}
}

// chargeGet draws the size of the value req asks for from p's budget.
// The hook cannot refuse a request, but it may change it: a request over
// budget loses its key, and kad-dht answers a request without one with
// nothing. The size is what the store holds now; a value that changes
// before the handler reads it is charged at its former size.
func (q *quotaStore) chargeGet(p peer.ID, req *pb.Message) {
	if q.chargeServed == nil {
		return
	}
	size := q.heldSize(string(req.GetKey()))
	if size == 0 || q.chargeServed(p, int(size)) {
		return
	}
	req.Key = nil
	q.mu.Lock()
	q.unserved++
	q.mu.Unlock()
}

// heldSize is the size of the value held under the DHT key key, 0 if none.
// The datastore key is the one kad-dht's value store files it under
// (records.valueDsKey, v0.42.1): the namespace, then the whole key in
// base32; TestHeldSizeFindsWhatKadDHTStores checks they agree.
func (q *quotaStore) heldSize(key string) int64 {
	ns, _, err := record.SplitKey(key)
	if err != nil || ns != keyNamespace {
		return 0
	}
	dk := ds.NewKey("/" + ns + "/" + base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString([]byte(key)))
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.held[dk].size
}

func (q *quotaStore) refuse(why, who string, args ...any) error {
	q.refused++
	now := time.Now()
	if t, ok := q.logged[why+who]; !ok || now.Sub(t) > 10*time.Minute {
		if len(q.logged) > maxAttributions {
			clear(q.logged)
		}
		q.logged[why+who] = now
		q.log.Warn("DHT value refused: "+why, args...)
	}
	return fmt.Errorf("%w: %s", ErrQuota, why)
}

// Put implements ds.Datastore.
func (q *quotaStore) Put(ctx context.Context, key ds.Key, value []byte) error {
	if !strings.HasPrefix(key.String(), "/"+keyNamespace+"/") {
		return q.Batching.Put(ctx, key, value)
	}
	rec := new(recpb.Record)
	if err := proto.Unmarshal(value, rec); err != nil {
		return fmt.Errorf("dhtstore: value record: %w", err)
	}
	r, err := q.val.open(string(rec.GetKey()), rec.GetValue())
	if err != nil {
		return err
	}
	size := int64(len(value))
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	a, remote := q.attrib[attribKey(string(rec.GetKey()), rec.GetValue())]
	delete(q.attrib, attribKey(string(rec.GetKey()), rec.GetValue()))
	h := held{size: size}
	if remote {
		h.from = a.from
	}
	err = q.admitLocked(key, r, &h)
	if err != nil {
		q.mu.Unlock()
		return err
	}
	// Held under the lock, so two writes cannot both fit the last slot.
	// kad-dht serializes writes per key, and writes to the DHT are rare
	// next to reads, so the lock costs little.
	defer q.mu.Unlock()
	if err := q.Batching.Put(ctx, key, value); err != nil {
		return err
	}
	q.forgetLocked(key)
	q.countLocked(key, h)
	return nil
}

// admitLocked applies the storage policy to r about to be written under
// key, filling in h's signer and pool.
func (q *quotaStore) admitLocked(key ds.Key, r *directory.Record, h *held) error {
	who := h.from.String()
	signers := make([]directory.PublicKey, len(r.Sigs))
	for i, s := range r.Sigs {
		signers[i] = s.Key
	}
	if len(signers) == 0 {
		// Open refuses unsigned records; this only keeps a change there
		// from turning into a panic here.
		return q.refuse("unsigned", who, "from", h.from)
	}
	if slices.Contains(signers, q.self) {
		h.signer = q.self
		return nil // our own records are always kept
	}
	if max := q.auth.MaxRecordBytes(); len(r.Encode()) > max {
		return q.refuse("larger than the charter's max_record_bytes", who,
			"from", h.from, "type", r.Type, "bytes", len(r.Encode()), "max", max)
	}
	role, signer := RoleNone, signers[0]
	for _, k := range signers {
		if rk := q.auth.Role(k); rk > role {
			role, signer = rk, k
		}
	}
	h.signer = signer
	// What the write replaces is given back before the checks: a newer
	// version of a slot costs only its growth.
	old, replacing := q.held[key]
	minus := func(t tally, who bool) tally {
		if replacing && who {
			t.add(old.size, -1)
		}
		return t
	}
	total := minus(q.total, true)
	if total.n+1 > q.lim.totalN || total.bytes+h.size > q.lim.totalB {
		return q.refuse("the DHT store is full", "", "from", h.from, "records", total.n, "bytes", total.bytes)
	}
	if h.from != "" {
		p := minus(tallyIn(q.byPeer, h.from), old.from == h.from)
		if p.n+1 > q.lim.peerN || p.bytes+h.size > q.lim.peerB {
			return q.refuse("the peer's quota is full", who, "from", h.from, "records", p.n, "bytes", p.bytes)
		}
	}
	switch role {
	case RolePublisher:
		s := minus(tallyIn(q.bySigner, signer), old.signer == signer && !old.pending)
		if s.n+1 > q.lim.signerN || s.bytes+h.size > q.lim.signerB {
			return q.refuse("the signer's quota is full", signer.Hex(), "from", h.from, "signer", directory.Fingerprint(signer), "records", s.n, "bytes", s.bytes)
		}
		return nil
	case RoleReader:
		// A reader signs nothing the directory keeps but its own
		// revocation, which must reach everyone even from a reader.
		if r.Type != directory.TypeRevocation {
			return q.refuse("signed by a reader, who publishes nothing but its own revocation", signer.Hex(),
				"from", h.from, "signer", directory.Fingerprint(signer), "type", r.Type)
		}
		s := minus(tallyIn(q.bySigner, signer), old.signer == signer && !old.pending)
		if s.n+1 > q.lim.readerN {
			return q.refuse("the reader's quota is full", signer.Hex(), "from", h.from, "signer", directory.Fingerprint(signer))
		}
		return nil
	}
	h.pending = true
	pend := minus(q.pending, old.pending)
	if pend.n+1 > q.lim.pendingN || pend.bytes+h.size > q.lim.pendingB {
		return q.refuse("the pool for signers not admitted here is full", "", "from", h.from, "signer", directory.Fingerprint(signer), "type", r.Type)
	}
	if h.from != "" {
		pp := minus(tallyIn(q.pendingBy, h.from), old.pending && old.from == h.from)
		if pp.n+1 > q.lim.pendingPeerN || pp.bytes+h.size > q.lim.pendingPeerB {
			return q.refuse("the peer's share of the pool for signers not admitted here is full", who,
				"from", h.from, "signer", directory.Fingerprint(signer), "type", r.Type)
		}
	}
	return nil
}

func tallyIn[K comparable](m map[K]*tally, k K) tally {
	if t := m[k]; t != nil {
		return *t
	}
	return tally{}
}

func bump[K comparable](m map[K]*tally, k K, size int64, sign int) {
	t := m[k]
	if t == nil {
		t = &tally{}
		m[k] = t
	}
	t.add(size, sign)
	if t.n <= 0 {
		delete(m, k)
	}
}

func (q *quotaStore) countLocked(key ds.Key, h held) {
	q.held[key] = h
	q.total.add(h.size, 1)
	bump(q.bySigner, h.signer, h.size, 1)
	if h.from != "" {
		bump(q.byPeer, h.from, h.size, 1)
	}
	if h.pending {
		q.pending.add(h.size, 1)
		if h.from != "" {
			bump(q.pendingBy, h.from, h.size, 1)
		}
	}
}

func (q *quotaStore) forgetLocked(key ds.Key) {
	h, ok := q.held[key]
	if !ok {
		return
	}
	delete(q.held, key)
	q.total.add(h.size, -1)
	bump(q.bySigner, h.signer, h.size, -1)
	if h.from != "" {
		bump(q.byPeer, h.from, h.size, -1)
	}
	if h.pending {
		q.pending.add(h.size, -1)
		if h.from != "" {
			bump(q.pendingBy, h.from, h.size, -1)
		}
	}
}

// Delete implements ds.Datastore.
func (q *quotaStore) Delete(ctx context.Context, key ds.Key) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	if err := q.Batching.Delete(ctx, key); err != nil {
		return err
	}
	q.forgetLocked(key)
	return nil
}

// Batch implements ds.Batching. kad-dht's value store writes one value at
// a time; a batch would bypass the policy, so there is none.
func (q *quotaStore) Batch(context.Context) (ds.Batch, error) {
	return nil, ds.ErrBatchUnsupported
}

// load counts what the store already holds, at start. Who put each value
// is not kept across restarts, so those count toward their signer and the
// totals only; a value the keyring can no longer open counts toward the
// totals (kad-dht drops it when it expires).
func (q *quotaStore) load(ctx context.Context) error {
	res, err := q.Batching.Query(ctx, dsq.Query{Prefix: "/" + keyNamespace})
	if err != nil {
		return err
	}
	defer res.Close()
	q.mu.Lock()
	defer q.mu.Unlock()
	for e := range res.Next() {
		if e.Error != nil {
			return e.Error
		}
		h := held{size: int64(len(e.Value)), pending: true}
		rec := new(recpb.Record)
		if proto.Unmarshal(e.Value, rec) == nil {
			if r, err := q.val.open(string(rec.GetKey()), rec.GetValue()); err == nil && len(r.Sigs) > 0 {
				h.signer = r.Sigs[0].Key
				for _, s := range r.Sigs {
					if s.Key == q.self || q.auth.Role(s.Key) != RoleNone {
						h.signer, h.pending = s.Key, false
						break
					}
				}
			}
		}
		q.countLocked(ds.NewKey(e.Key), h)
	}
	return nil
}

// close stops all writes. It waits for a write in progress (writes hold
// mu), so once it returns the caller may close the datastore under it.
func (q *quotaStore) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
}

func (q *quotaStore) usage() Usage {
	q.mu.Lock()
	defer q.mu.Unlock()
	return Usage{Records: q.total.n, Bytes: q.total.bytes, Pending: q.pending.n, Refused: q.refused, Unserved: q.unserved}
}
