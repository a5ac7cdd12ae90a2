package directory

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Heartbeat is a steward's signed statement "as of Issued, my node was at
// this charter version, this epoch, this directory digest, and held these
// members' entries up to these issue times", valid until Expires. Stewards' nodes publish one every hour or so. A node whose
// newest valid heartbeat has expired knows that news from the stewards
// stopped reaching it, even while its peers answer: the one sign of an
// eclipse by insiders who serve sync but withhold what is new
// (docs/SECURITY.md). Heartbeats never enter the digest: they would change
// it every hour on every node.
type Heartbeat struct {
	Charter uint64 `cbor:"1,keyasint"`
	Epoch   uint64 `cbor:"2,keyasint,omitempty"` // zero before any epoch is effective
	Digest  Hash   `cbor:"3,keyasint"`
	Issued  int64  `cbor:"4,keyasint"`
	Expires int64  `cbor:"5,keyasint"`
	// Members are watermarks of what the steward's node held of each
	// member's entries, by key, ascending: at most MaxHeartbeatMembers,
	// those with the newest entries (what an eclipse withholds is new).
	Members []Watermark `cbor:"6,keyasint,omitempty"`
}

// Watermark says that a node held an entry of Member issued at Newest
// (the newest of its entries it held, expired ones included). A node that
// holds none of that member's entries issued then or later lacks one.
type Watermark struct {
	Member PublicKey `cbor:"1,keyasint"`
	Newest int64     `cbor:"2,keyasint"`
}

// MaxHeartbeatMembers bounds a heartbeat's watermarks: about 46 bytes
// each, 1,024 of them take about 47 KB, within the default
// max_record_bytes (64 KiB). NewHeartbeat also keeps the record within
// the charter's limit, so the heartbeat can be put in the DHT.
const MaxHeartbeatMembers = 1024

// watermarkBytes is an upper bound on one watermark's encoded size, and
// heartbeatBaseBytes on the rest of a heartbeat record (one signature).
const (
	watermarkBytes     = 48
	heartbeatBaseBytes = 512
)

// Heartbeat bounds. The validity is long enough to ride out a missed beat
// or two and a slow sync, short enough that an eclipse shows within hours.
const (
	MinHeartbeatValidity     = 10 * time.Minute
	MaxHeartbeatValidity     = 24 * time.Hour
	DefaultHeartbeatInterval = time.Hour
	DefaultHeartbeatValidity = 3 * time.Hour
)

func (*Heartbeat) RecordType() RecordType { return TypeHeartbeat }

func (h *Heartbeat) check() error {
	if h.Charter == 0 {
		return errors.New("charter version starts at 1")
	}
	if h.Epoch > maxEpochNumber {
		return fmt.Errorf("epoch number %d is beyond any real network's %d", h.Epoch, uint64(maxEpochNumber))
	}
	if h.Digest == (Hash{}) {
		return errors.New("digest missing")
	}
	if err := checkTime("issued", h.Issued); err != nil {
		return err
	}
	if err := checkTime("expires", h.Expires); err != nil {
		return err
	}
	if v := time.Duration(h.Expires-h.Issued) * time.Second; v < MinHeartbeatValidity || v > MaxHeartbeatValidity {
		return fmt.Errorf("valid for %s, want %s to %s", v, MinHeartbeatValidity, MaxHeartbeatValidity)
	}
	if len(h.Members) > MaxHeartbeatMembers {
		return fmt.Errorf("%d member watermarks, at most %d", len(h.Members), MaxHeartbeatMembers)
	}
	for i, w := range h.Members {
		if i > 0 && compareKeys(h.Members[i-1].Member, w.Member) >= 0 {
			return errors.New("member watermarks must be in ascending key order, each key once")
		}
		if err := checkTime("member watermark", w.Newest); err != nil {
			return err
		}
	}
	return nil
}

// NewHeartbeat is the heartbeat a steward's node publishes: what s says
// now, valid for validity (0 means DefaultHeartbeatValidity).
func NewHeartbeat(s *State, steward *Identity, validity time.Duration) (*Record, error) {
	if validity == 0 {
		validity = DefaultHeartbeatValidity
	}
	c := s.Charter()
	if c == nil {
		return nil, reject(TypeHeartbeat, ErrUnknownCharter, "no charter yet")
	}
	now := s.now().Unix()
	limit := min(MaxHeartbeatMembers, max(0, (c.Policy.MaxRecordSize()-heartbeatBaseBytes)/watermarkBytes))
	hb := &Heartbeat{Charter: c.Version, Epoch: s.CurrentEpoch(), Digest: s.Digest(), Issued: now, Expires: now + int64(validity/time.Second),
		Members: s.watermarks(limit)}
	return NewRecord(s.Network(), hb, steward)
}

// watermarks are, for the active members whose entries this node holds,
// the newest issue time held: the limit with the newest, by key.
func (s *State) watermarks(limit int) []Watermark {
	s.mu.RLock()
	var out []Watermark
	for k := range s.members {
		if !s.activeMember(k) {
			continue
		}
		if t, ok := s.newestIssued(k); ok {
			out = append(out, Watermark{Member: k, Newest: t})
		}
	}
	s.mu.RUnlock()
	if len(out) > limit {
		slices.SortFunc(out, func(a, b Watermark) int {
			if a.Newest != b.Newest {
				return cmp.Compare(b.Newest, a.Newest)
			}
			return compareKeys(a.Member, b.Member)
		})
		out = out[:limit]
	}
	slices.SortFunc(out, func(a, b Watermark) int { return compareKeys(a.Member, b.Member) })
	return out
}

// newestIssued is the newest issue time of k's entries held, expired
// ones included (their slot remembers the entry), so a watermark does not
// go back when an entry expires on one node before another.
func (s *State) newestIssued(k PublicKey) (int64, bool) {
	var t int64
	ok := false
	for _, slot := range s.entries[k] {
		if !ok || slot.facts.issued > t {
			t, ok = slot.facts.issued, true
		}
	}
	return t, ok
}

// heartbeatSlot is the newest heartbeat of one steward. An expired one
// leaves the pool (Expire) but is remembered, so a node can say when it
// last heard from the stewards.
type heartbeatSlot struct {
	hash    Hash
	body    *Heartbeat
	expired bool
}

// addHeartbeat applies a steward's heartbeat: one signer, a steward of a
// linked charter of the version it cites (a revoked one was refused in
// checkCommon), unexpired, newer than the one held. Acceptance depends
// only on what grows with the pool (linked charters, revocations), never
// on which branch of a fork is the tip, so every node holds the same
// heartbeats whatever the order; which of them count is decided when
// freshness is read (HeartbeatFreshness).
func (s *State) addHeartbeat(r *Record, h Hash, b *Heartbeat) (bool, error) {
	if len(r.Sigs) != 1 {
		return false, reject(r.Type, ErrInvalid, "a heartbeat has one signer, a steward")
	}
	k := r.Sigs[0].Key
	cs := s.linked[b.Charter]
	if len(cs) == 0 {
		// The steward's node is ahead of this one: taken once the
		// charter arrives. Meanwhile the node holds it aside (parked),
		// and it still says what this node lacks
		// (HeartbeatFreshnessWith).
		return false, reject(r.Type, ErrUnknownCharter, "heartbeat at charter %d, not known here", b.Charter)
	}
	if !slices.ContainsFunc(cs, func(c *Charter) bool { return c.isSteward(k) }) {
		// Passing from version 2 on: a fork's other side may name it.
		return false, reject(r.Type, notStewardOf(b.Charter), "signer %s is a steward of no linked charter %d", Fingerprint(k), b.Charter)
	}
	if !s.now().Before(time.Unix(b.Expires, 0)) {
		return false, reject(r.Type, ErrExpired, "heartbeat expired %s", time.Unix(b.Expires, 0).UTC().Format(time.RFC3339))
	}
	if cur := s.heartbeats[k]; cur != nil {
		if cur.body.Issued > b.Issued || cur.body.Issued == b.Issued && bytes.Compare(cur.hash[:], h[:]) < 0 {
			return false, reject(r.Type, ErrStale, "heartbeat of %s issued %d, have %d", Fingerprint(k), b.Issued, cur.body.Issued)
		}
		if !cur.expired {
			delete(s.records, cur.hash)
			s.dropped = append(s.dropped, cur.hash)
		}
	}
	s.heartbeats[k] = &heartbeatSlot{hash: h, body: b}
	s.records[h] = r
	return false, nil
}

// dropHeartbeat forgets k's heartbeat: k was revoked, and revocation is
// for good.
func (s *State) dropHeartbeat(k PublicKey) {
	cur := s.heartbeats[k]
	if cur == nil {
		return
	}
	if !cur.expired {
		delete(s.records, cur.hash)
		s.dropped = append(s.dropped, cur.hash)
	}
	delete(s.heartbeats, k)
}

// expireHeartbeats takes expired heartbeats out of the pool, keeping what
// they said.
func (s *State) expireHeartbeats(now time.Time) {
	for _, hb := range s.heartbeats {
		if !hb.expired && !now.Before(time.Unix(hb.body.Expires, 0)) {
			delete(s.records, hb.hash)
			hb.expired = true
		}
	}
}

// StewardHeartbeat is the newest heartbeat a node holds from one steward.
type StewardHeartbeat struct {
	Steward PublicKey
	Charter uint64
	Epoch   uint64
	Digest  Hash
	Issued  time.Time
	Expires time.Time
	// Members are the watermarks it carries (Heartbeat.Members).
	Members []Watermark
	// Current: the signer is a steward of the current charter, so the
	// heartbeat counts for freshness. A steward removed by an amendment
	// may still sign heartbeats citing a version it was in; they are
	// held (one per key) but say nothing about the network now.
	Current bool
}

// Heartbeats returns the newest heartbeat of each steward this node has
// heard from, expired ones included, the most recent first.
func (s *State) Heartbeats() []StewardHeartbeat {
	s.mu.RLock()
	defer s.mu.RUnlock()
	tip := s.charterAt(uint64(len(s.chain)))
	out := make([]StewardHeartbeat, 0, len(s.heartbeats))
	for k, hb := range s.heartbeats {
		b := hb.body
		out = append(out, StewardHeartbeat{Steward: k, Charter: b.Charter, Epoch: b.Epoch, Digest: b.Digest,
			Issued: time.Unix(b.Issued, 0), Expires: time.Unix(b.Expires, 0), Members: b.Members, Current: tip != nil && tip.isSteward(k)})
	}
	slices.SortFunc(out, func(a, b StewardHeartbeat) int {
		if c := b.Issued.Compare(a.Issued); c != 0 {
			return c
		}
		return compareKeys(a.Steward, b.Steward)
	})
	return out
}

// Freshness is what the stewards' heartbeats say about a node's copy.
type Freshness struct {
	// Stale: no heartbeat of a current steward is valid now. Either the
	// stewards' nodes have been down for longer than a heartbeat lasts,
	// or this node's peers withhold what is new (an eclipse).
	Stale bool
	// Newest is when the newest heartbeat of a current steward was
	// issued, and Expires when the last of them expires (or expired);
	// zero if none was ever received.
	Newest, Expires time.Time
	// Valid counts the current stewards whose heartbeat is valid now.
	Valid int
	// Behind: a valid heartbeat of a current steward, issued more than
	// HeartbeatGrace ago, names a charter version or an epoch this copy
	// still lacks, or a member's entry issued later than any of that
	// member's this copy holds. Governance and entries reach every honest
	// node in seconds, and the heartbeat itself came through this node's
	// peers, so they pass on the stewards' heartbeats but hold back what
	// the heartbeats report: the eclipse that a valid heartbeat alone
	// would hide. BehindCharter and BehindEpoch are the newest such
	// version and epoch (zero if not); BehindMembers counts the members
	// whose entries this copy lacks.
	Behind                     bool
	BehindCharter, BehindEpoch uint64
	BehindMembers              int
}

// HeartbeatGrace is how long a node may lack the charter version, epoch
// or entries a steward's heartbeat reports before it says it is behind:
// far more than a record takes to cross an honest network (seconds; a
// 10,000-reader rotation's epoch record is one small record; an entry is
// gossiped at once and synced within minutes even on a lowdata node), far
// less than a heartbeat lasts. Digests are not compared: they differ for
// honest reasons while records travel; watermarks only say "at least".
const HeartbeatGrace = 10 * time.Minute

// HeartbeatFreshness says whether a valid heartbeat of a current steward
// is held, by the state's clock, and whether one reports governance or
// entries this copy still lacks.
func (s *State) HeartbeatFreshness() Freshness { return s.HeartbeatFreshnessWith(nil) }

// HeartbeatFreshnessWith is HeartbeatFreshness, also weighing waiting:
// heartbeats refused for now because they cite a charter version not
// linked here (ErrUnknownCharter: the node holds them aside). One signed by
// a steward of this copy's current charter, valid and issued more than
// HeartbeatGrace ago, says this copy lacks an amendment (BehindCharter):
// the amendment alone withheld, which the held heartbeats, citing versions
// this copy has, cannot show. It does not count toward Valid: the state
// has not taken it.
func (s *State) HeartbeatFreshnessWith(waiting []*Record) Freshness {
	now := s.now()
	var f Freshness
	var haveCharter uint64
	tip := s.Charter()
	if tip != nil {
		haveCharter = tip.Version
	}
	haveEpoch := s.CurrentEpoch()
	var marks []Watermark
	for _, hb := range s.Heartbeats() {
		if !hb.Current {
			continue
		}
		if now.Before(hb.Expires) && now.Sub(hb.Issued) > HeartbeatGrace {
			if hb.Charter > haveCharter {
				f.Behind, f.BehindCharter = true, max(f.BehindCharter, hb.Charter)
			}
			if hb.Epoch > haveEpoch {
				f.Behind, f.BehindEpoch = true, max(f.BehindEpoch, hb.Epoch)
			}
			marks = append(marks, hb.Members...)
		}
		if hb.Issued.After(f.Newest) {
			f.Newest = hb.Issued
		}
		if hb.Expires.After(f.Expires) {
			f.Expires = hb.Expires
		}
		if now.Before(hb.Expires) {
			f.Valid++
		}
	}
	for _, r := range waiting {
		b, err := r.DecodeBody()
		hb, ok := b.(*Heartbeat)
		if err != nil || !ok || len(r.Sigs) != 1 || r.Network != s.Network() || tip == nil || !tip.isSteward(r.Sigs[0].Key) || s.IsRevoked(r.Sigs[0].Key) {
			continue
		}
		issued, expires := time.Unix(hb.Issued, 0), time.Unix(hb.Expires, 0)
		if hb.Charter > haveCharter && now.Before(expires) && now.Sub(issued) > HeartbeatGrace {
			f.Behind, f.BehindCharter = true, max(f.BehindCharter, hb.Charter)
		}
	}
	if n := s.lackedMembers(marks); n > 0 {
		f.Behind, f.BehindMembers = true, n
	}
	f.Stale = f.Valid == 0
	return f
}

// lackedMembers counts the members named in marks whose entries this copy
// holds none of issued at or after the watermark. A member revoked here
// is not counted: its entries left on purpose.
func (s *State) lackedMembers(marks []Watermark) int {
	if len(marks) == 0 {
		return 0
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	lacked := map[PublicKey]bool{}
	for _, w := range marks {
		if _, rev := s.revoked[w.Member]; rev || lacked[w.Member] {
			continue
		}
		if t, ok := s.newestIssued(w.Member); !ok || t < w.Newest {
			lacked[w.Member] = true
		}
	}
	return len(lacked)
}
