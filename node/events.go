package node

import (
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ceiba-network/ceiba/directory"
)

// Via says how a record reached the node.
type Via string

const (
	ViaLocal  Via = "local"  // Publish or Import on this node
	ViaGossip Via = "gossip" // the network's GossipSub topic
	ViaSync   Via = "sync"   // an anti-entropy sync session
	ViaDHT    Via = "dht"    // fetched from the DHT
)

// EventKind says what an Event reports.
type EventKind string

const (
	// EventRecord: a record entered the state, and the store: one taken
	// by gossip is on its way there (writebehind.go), every other one is
	// there already. Changed says whether the effective view changed with
	// it.
	EventRecord EventKind = "record"
	// EventRejected: a record was refused; Err says why (errors.Is with
	// the directory sentinels). Duplicates are not reported.
	EventRejected EventKind = "rejected"
	// EventKey: the node adopted the read key of Epoch.
	EventKey EventKind = "key"
	// EventSync: a sync session with From finished; Pulled records came
	// in, Err is set if it failed.
	EventSync EventKind = "sync"
	// EventDHT: a DHT operation finished: a Put of Hash, a manifest of
	// Pulled slots (Type is TypeManifest), or a fetch that read Read slots
	// and brought Pulled records (Hash zero). Err is set if it failed.
	EventDHT EventKind = "dht"
	// EventRevocationVoided: the revocation by stewards whose proposal ID
	// is Hash reached its threshold but does not take effect, because a
	// revocation citing an earlier charter version revoked some of its
	// signers (directory.Proposal.Uncounted); the key it named is not
	// revoked. Stewards must approve it again, citing the current version.
	EventRevocationVoided EventKind = "revocation-voided"
	// EventLagged: this subscriber was too slow and Missed events were
	// dropped for it. Whatever it derives from events should be
	// recomputed from State.
	EventLagged EventKind = "lagged"
)

// Event is one thing that happened on the node.
type Event struct {
	Kind EventKind
	Time time.Time
	Via  Via
	// From is the peer that handed the record over (the gossip hop, the
	// sync peer); empty for local records and DHT fetches.
	From    peer.ID
	Hash    directory.Hash
	Type    directory.RecordType
	Changed bool
	Err     error
	Epoch   uint64
	Pulled  int
	Missed  int
	Read    int
}

// eventBuffer is each subscriber's queue. A subscriber that falls further
// behind loses events rather than slowing the node.
const eventBuffer = 256

type subscriber struct {
	ch     chan Event
	missed int
}

type broker struct {
	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	closed bool
}

func newBroker() *broker { return &broker{subs: map[*subscriber]struct{}{}} }

// subscribe registers a subscriber. The cancel function unregisters it and
// closes its channel; it may be called more than once.
func (b *broker) subscribe() (<-chan Event, func()) {
	s := &subscriber{ch: make(chan Event, eventBuffer)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(s.ch)
		return s.ch, func() {}
	}
	b.subs[s] = struct{}{}
	return s.ch, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		if _, ok := b.subs[s]; ok {
			delete(b.subs, s)
			close(s.ch)
		}
	}
}

// publish hands ev to every subscriber without ever blocking: a full
// queue counts the event as missed, and the subscriber learns how many it
// missed as soon as its queue has room again.
func (b *broker) publish(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for s := range b.subs {
		if s.missed > 0 {
			select {
			case s.ch <- Event{Kind: EventLagged, Time: ev.Time, Missed: s.missed}:
				s.missed = 0
			default:
				s.missed++
				continue
			}
		}
		select {
		case s.ch <- ev:
		default:
			s.missed++
		}
	}
}

// close ends every subscription.
func (b *broker) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	for s := range b.subs {
		delete(b.subs, s)
		close(s.ch)
	}
}
