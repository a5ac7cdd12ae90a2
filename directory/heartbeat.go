package directory

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Heartbeat is a steward's signed statement "as of Issued, my node was at
// this charter version, this epoch, this directory digest", valid until
// Expires. Stewards' nodes publish one every hour or so. A node whose
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
}

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
	hb := &Heartbeat{Charter: c.Version, Epoch: s.CurrentEpoch(), Digest: s.Digest(), Issued: now, Expires: now + int64(validity/time.Second)}
	return NewRecord(s.Network(), hb, steward)
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
		// charter arrives.
		return false, reject(r.Type, ErrUnknownCharter, "heartbeat at charter %d, not known here", b.Charter)
	}
	if !slices.ContainsFunc(cs, func(c *Charter) bool { return c.isSteward(k) }) {
		return false, reject(r.Type, ErrNotSteward, "signer %s is not a steward of charter %d", Fingerprint(k), b.Charter)
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
			Issued: time.Unix(b.Issued, 0), Expires: time.Unix(b.Expires, 0), Current: tip != nil && tip.isSteward(k)})
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
	// still lacks. Governance reaches every honest node in seconds, and the
	// heartbeat itself came through this node's peers, so they pass on the
	// stewards' heartbeats but hold back what the heartbeats report: the
	// eclipse that a valid heartbeat alone would hide. BehindCharter and
	// BehindEpoch are the newest such version and epoch (zero if not).
	Behind                     bool
	BehindCharter, BehindEpoch uint64
}

// HeartbeatGrace is how long a node may lack the charter version or epoch
// a steward's heartbeat reports before it says it is behind: far more than
// governance takes to cross an honest network (seconds; a 10,000-reader
// rotation's epoch record is one small record), far less than a heartbeat
// lasts. Digests are not compared: they differ for honest reasons while
// entries travel, and an eclipse that withholds only entries stays to be
// seen by the stale bound on sync.
const HeartbeatGrace = 10 * time.Minute

// HeartbeatFreshness says whether a valid heartbeat of a current steward
// is held, by the state's clock, and whether one reports governance this
// copy still lacks.
func (s *State) HeartbeatFreshness() Freshness {
	now := s.now()
	var f Freshness
	var haveCharter uint64
	if c := s.Charter(); c != nil {
		haveCharter = c.Version
	}
	haveEpoch := s.CurrentEpoch()
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
	f.Stale = f.Valid == 0
	return f
}
