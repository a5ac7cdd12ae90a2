package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-datastore"
	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/dhtstore"
	"github.com/ceiba-network/ceiba/transport"
)

// ErrClosed is returned by operations on a closed node.
var ErrClosed = errors.New("node: closed")

// Node is one running peer of one Ceiba network. It is safe for concurrent
// use.
type Node struct {
	cfg   Config
	log   *slog.Logger
	id    *directory.Identity
	state *directory.State

	host    host.Host
	ownHost bool
	root    datastore.Batching
	ownDS   bool
	// repair says what the node did at start with a damaged store; nil
	// when the store was sound. Status reports it.
	repair *StoreRepair
	store  *recordStore

	ps *pubsub.PubSub
	// outq follows GossipSub's outbound queues (outqueue.go).
	outq *outQueues
	// topics is the gossip topics the node is on, by the key tag they
	// belong to (topics.go); topicFilter lets through only their names.
	topicsMu    sync.Mutex
	topics      map[directory.KeyTag]*keyTopics
	topicFilter *topicFilter
	topicsWake  chan struct{}
	dht         *dhtstore.Store
	dhtPuts     chan *directory.Record
	dhtMan      chan struct{}

	events    *broker
	bootstrap []peer.AddrInfo
	sync      *syncer

	// keys is an immutable snapshot of keyring, for the hot paths that
	// only read (every gossip validation, the DHT validator).
	keys atomic.Pointer[directory.Keyring]

	mu        sync.Mutex
	keyring   directory.Keyring
	epochSeen map[uint64]directory.Hash // effective epoch → fingerprint of its package for us, once handled
	adopted   map[uint64]directory.Hash // epoch → fingerprint of the effective record its key was taken from
	// keyMismatch holds the effective epochs whose package for this node
	// held another key than the epoch commits to: its signers sealed
	// different keys to different recipients, which only a recipient can
	// see, so this node says so (status, health) for the stewards to act.
	keyMismatch map[uint64]bool
	// pageFetch fetches the missing pages of a rotation (pagefetch.go).
	pageFetch pageFetcher
	pkgCache  map[directory.Hash]packageResult
	// loaded is set once the state is rebuilt from the store; keys are
	// pruned only after that (pruneKeys).
	loaded      atomic.Bool
	stored      map[directory.Hash]uint64   // what the store holds, and the epoch it is sealed under
	retiredAt   atomic.Uint64               // the current epoch when retirePages last ran
	storedVer   uint64                      // bumped on every change to stored
	unpersisted map[directory.Hash]struct{} // in the state, not yet on disk
	ckpt        checkpointState             // the last start-up checkpoint (checkpoint.go)
	// indexRestored says the search index came from its snapshot at start
	// (indexsnap.go), not from indexing every entry; indexSavedAt is when
	// the last snapshot was written.
	indexRestored bool
	indexSavedAt  time.Time
	// indexStale says the start could not use the snapshot it found, or
	// found none: New writes one in the background.
	indexStale bool
	// digestAdopted says the start kept the digest its checkpoint carried
	// (directory.State.AdoptDigest) instead of computing it.
	digestAdopted bool
	// orphans are on disk but no longer pooled. They are deleted only
	// when no record is between Apply and its durable write and none is
	// unpersisted: until then the record that superseded one may not be on
	// disk, and a crash would lose both (storeOrphans).
	orphans      map[directory.Hash]struct{}
	inflight     int           // accept and acceptBatch calls between Apply and persist
	behind       []writeBehind // records taken by gossip, waiting for their write (writebehind.go)
	behindKick   chan struct{}
	revokedAt    map[directory.PublicKey]time.Time // when this node learned of each revocation
	voided       map[directory.Hash]bool           // revocations reported as having lost their threshold (noteVoided)
	parked       parking                           // records refused for a reason that may pass
	keysUnsaved  bool
	lastDHTFetch time.Time
	accepted     map[Via]int
	duplicates   map[Via]int

	saveMu sync.Mutex // one SaveKeys at a time, newest snapshot last

	scoresMu sync.Mutex
	scores   map[peer.ID]float64

	// authorRate holds the forwarding rule's buckets (authorrate.go);
	// localRate the node's own organization's publications, kept apart
	// so that copies of its versions coming back by gossip (from another
	// device of the same key, or a test) do not spend them.
	authorRate, localRate *authorRate
	// forwardRate holds each peer to what an honest forwarder of an
	// author's versions can deliver (forwardrate.go).
	forwardRate *forwardRate

	reach reachState // reachability.go

	adm *admission // admit.go

	// life guards shutdown: every entry point that touches the store holds
	// it for reading, and Close takes it for writing before closing the
	// datastore, so nothing writes to a closed store.
	life   sync.RWMutex
	closed bool

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

// New starts a node: it opens the store and rebuilds the state from it,
// starts the host, GossipSub, sync and the DHT, and begins connecting to
// the bootstrap peers in the background. ctx bounds only the start; the
// node runs until Close.
func New(ctx context.Context, c Config) (n *Node, err error) {
	cfg, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	n = &Node{
		cfg:         cfg,
		log:         cfg.Logger.With("component", "node"),
		id:          cfg.Keystore.Identity,
		state:       directory.NewState(cfg.Network, cfg.Now),
		events:      newBroker(),
		keyring:     maps.Clone(cfg.Keystore.Keys),
		epochSeen:   map[uint64]directory.Hash{},
		behindKick:  make(chan struct{}, 1),
		topics:      map[directory.KeyTag]*keyTopics{},
		keyMismatch: map[uint64]bool{},
		adopted:     map[uint64]directory.Hash{},
		pkgCache:    map[directory.Hash]packageResult{},
		stored:      map[directory.Hash]uint64{},
		unpersisted: map[directory.Hash]struct{}{},
		orphans:     map[directory.Hash]struct{}{},
		revokedAt:   map[directory.PublicKey]time.Time{},
		voided:      map[directory.Hash]bool{},
		scores:      map[peer.ID]float64{},
		accepted:    map[Via]int{},
		duplicates:  map[Via]int{},
		authorRate:  newAuthorRate(),
		localRate:   newAuthorRate(),
		forwardRate: newForwardRate(),
		adm:         newAdmission(cfg.Network),
		dhtPuts:     make(chan *directory.Record, 1024),
		dhtMan:      make(chan struct{}, 1),
	}
	n.pageFetch.kick = make(chan struct{}, 1)
	n.publishKeyring()
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.Close()
			n = nil
		}
	}()

	for _, s := range cfg.Bootstrap {
		ai, err := parseP2PAddr(s)
		if err != nil {
			return n, fmt.Errorf("node: bootstrap address %q: %w", s, err)
		}
		n.bootstrap = append(n.bootstrap, ai)
	}

	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
			return n, fmt.Errorf("node: data directory: %w", err)
		}
	}
	if cfg.Datastore != nil {
		n.root = cfg.Datastore
	} else {
		pds, rep, err := openStore(cfg.DataDir, n.log, time.Now()) // names the damaged copy: the wall clock, not the node's
		if err != nil {
			return n, fmt.Errorf("node: opening the store: %w", err)
		}
		n.root, n.ownDS, n.repair = pds, true, rep
	}
	n.store = newRecordStore(n.root)
	n.state.SetRecordLoader(n.loadStored)
	if err := n.load(ctx); err != nil {
		return n, err
	}

	rates, err := transport.RatesFor(cfg.Transport)
	if err != nil {
		return n, fmt.Errorf("node: %w", err)
	}
	if cfg.Host != nil {
		n.host = cfg.Host
	} else if err := n.startHost(); err != nil {
		return n, err
	}
	n.host = transport.LimitRate(n.host, rates)
	if err := n.startReachability(); err != nil {
		return n, err
	}
	n.sync = newSyncer(n)
	n.host.SetStreamHandler(SyncProtocol, n.sync.serve)
	if n.ownHost {
		n.startAdmission()
	}
	if err := n.startGossip(); err != nil {
		return n, err
	}
	if err := n.startDHT(); err != nil {
		return n, err
	}
	n.host.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) { n.sync.request(c.RemotePeer()) },
		DisconnectedF: func(nw network.Network, c network.Conn) {
			if p := c.RemotePeer(); len(nw.ConnsToPeer(p)) == 0 {
				n.forwardRate.forgetPeer(p)
				n.sync.forget(p)
			}
		},
	})
	// Peers that connected while the node was starting got no
	// notification; sync with them too.
	for _, p := range n.host.Network().Peers() {
		n.sync.request(p)
	}
	n.wg.Go(n.syncLoop)
	n.wg.Go(n.behindLoop)
	n.wg.Go(n.maintainLoop)
	// In the background: offline, or with a bootstrap peer gone, waiting
	// for the dials would hold up the daemon (and its local API, which
	// searches the local copy) for their whole timeout. A connection
	// starts a sync session when it comes up.
	n.wg.Go(func() { n.connectBootstrap(n.ctx) })
	if n.indexStale {
		n.wg.Go(func() {
			if !n.enter() {
				return
			}
			defer n.leave()
			if err := n.saveIndexSnapshot(); err != nil {
				n.log.Warn("writing the index snapshot; the next start indexes every entry again", "err", err)
			}
		})
	}
	n.log.Info("node started", "peer", n.host.ID(), "network", cfg.Network.String()[:12],
		"records", len(n.stored), "epoch", n.state.CurrentEpoch())
	return n, nil
}

func (n *Node) startHost() error {
	sk, err := loadHostKey(filepath.Join(n.cfg.DataDir, hostKeyFile))
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	tc := n.cfg.Transport
	if len(n.cfg.Listen) > 0 {
		tc.Listen = n.cfg.Listen
	}
	for _, ai := range n.bootstrap {
		tc.Protected = append(tc.Protected, ai.ID)
	}
	tc.Protocols = append(tc.Protocols, transport.ProtocolLimit{
		ID: SyncProtocol, Streams: maxInboundStreams, StreamsPerPeer: maxInboundPerPeer,
	})
	tc = n.withPolicyTransport(tc)
	tc.StreamGate, tc.DenyPeer, tc.DenyAccept, tc.RelayACL = n.streamGate, n.denyPeer, n.denyAccept, relayACL{n}
	// On before the host exists: a stream that arrives before
	// startAdmission waits for it (adm.ready), it does not slip through.
	n.adm.on.Store(true)
	built, err := transport.Options(tc)
	if err != nil {
		return fmt.Errorf("node: %w", err)
	}
	n.hostBuilt(built, tc)
	h, err := libp2p.New(append(built.Options, libp2p.Identity(sk))...)
	if err != nil {
		built.ConnManager.Close()
		return fmt.Errorf("node: starting the host: %w", err)
	}
	n.host, n.ownHost = h, true
	return nil
}

// Close stops the node: background work, GossipSub, the DHT, the host (if
// the node built it) and the store (if the node opened it). It is safe to
// call more than once.
func (n *Node) Close() error {
	n.once.Do(func() {
		n.cancel()
		n.sync.shutdown()
		n.life.Lock()
		n.closed = true
		n.life.Unlock()
		n.wg.Wait()
		var errs []error
		n.closeTopics()
		if n.dht != nil {
			errs = append(errs, n.dht.Close())
		}
		if n.host != nil {
			n.host.RemoveStreamHandler(SyncProtocol)
			n.host.RemoveStreamHandler(AdmitProtocol)
			if n.ownHost {
				errs = append(errs, n.host.Close())
			}
		}
		if n.store != nil {
			// What gossip brought since the writer's last round.
			n.flushBehind()
			// After wg.Wait, with nothing else writing: the next start
			// verifies nothing this node verified (checkpoint.go).
			if err := n.saveCheckpoint(context.Background(), true); err != nil {
				n.log.Warn("writing the start-up checkpoint; the next start verifies every record again", "err", err)
			}
		}
		if n.ownDS && n.root != nil {
			errs = append(errs, n.root.Close())
		}
		n.events.close()
		n.err = errors.Join(errs...)
	})
	return n.err
}

// enter marks the start of work that may touch the store; it fails once
// the node is closing. Every successful enter must be paired with leave,
// and enter must not be nested.
func (n *Node) enter() bool {
	n.life.RLock()
	if n.closed {
		n.life.RUnlock()
		return false
	}
	return true
}

func (n *Node) leave() { n.life.RUnlock() }

// State is the node's directory state. Read from it freely; change it only
// through Publish and Import, which also store and announce. It shows a
// record from the moment it is applied, a moment before the store has made
// it durable; what the node acknowledges (Publish returning, forwarding on
// the topic, offering to sync peers) waits for the write.
func (n *Node) State() *directory.State { return n.state }

// Host is the node's libp2p host.
func (n *Node) Host() host.Host { return n.host }

// Addrs returns the addresses the node listens on, each ending in
// /p2p/<peer ID>: what another node puts in its Bootstrap list.
func (n *Node) Addrs() []ma.Multiaddr {
	addrs, err := peer.AddrInfoToP2pAddrs(&peer.AddrInfo{ID: n.host.ID(), Addrs: n.host.Addrs()})
	if err != nil {
		return nil
	}
	return addrs
}

// Connect dials the peer at addr, a multiaddr ending in /p2p/<peer ID>.
func (n *Node) Connect(ctx context.Context, addr string) error {
	ai, err := parseP2PAddr(addr)
	if err != nil {
		return err
	}
	return n.host.Connect(ctx, ai)
}

func parseP2PAddr(s string) (peer.AddrInfo, error) {
	a, err := ma.NewMultiaddr(s)
	if err != nil {
		return peer.AddrInfo{}, err
	}
	ai, err := peer.AddrInfoFromP2pAddr(a)
	if err != nil {
		return peer.AddrInfo{}, fmt.Errorf("%w (an address must end in /p2p/<peer ID>)", err)
	}
	return *ai, nil
}

// Subscribe returns a stream of the node's events and a function that ends
// the subscription. Delivery never blocks the node: a subscriber that does
// not keep up loses events and is told how many with an EventLagged. The
// channel is closed when the subscription ends or the node closes.
func (n *Node) Subscribe() (<-chan Event, func()) { return n.events.subscribe() }

// Publish adds a signed record to the directory: the state applies it (a
// record it refuses returns that error and changes nothing), the store
// makes it durable, then it is gossiped and put in the DHT. When Publish
// returns nil, the record survives a crash of this node.
//
// If the state accepts the record but the store cannot write it, Publish
// returns the store's error: the record is in this node's state but not
// acknowledged or announced; the node keeps retrying the write.
func (n *Node) Publish(ctx context.Context, r *directory.Record) (directory.Applied, error) {
	if !n.enter() {
		return directory.Applied{}, ErrClosed
	}
	defer n.leave()
	if err := n.checkLocalEntry(r); err != nil {
		return directory.Applied{}, err
	}
	applied, sealed, err := n.accept(r, "", ViaLocal)
	if errors.Is(err, directory.ErrDuplicate) {
		// Taken on an earlier attempt whose write the store refused (a
		// full disk), it is held but neither on disk nor gossiped: to
		// publish it again is to write it now, and only then is it done.
		var tried bool
		if tried, sealed, err = n.persistHeld(r.Hash()); tried {
			if err != nil {
				return applied, err
			}
			applied.Hash, applied.Type = r.Hash(), r.Type
		} else {
			err = directory.ErrDuplicate
		}
	}
	if err != nil {
		return applied, err
	}
	n.gossip(ctx, applied.Hash, r.Type, sealed)
	n.queueDHTPut(r)
	return applied, nil
}

// Import takes a sealed record from outside the network (an invite, an
// export bundle, a revocation certificate) through the same path as one
// from a peer. A record the node accepts is gossiped on. The error is the
// refusal, as from Publish; ErrDuplicate means the node had it already.
// As with Publish, a record held from an earlier attempt whose write the
// store refused is written now, and the store's error returned if it
// fails again.
func (n *Node) Import(ctx context.Context, sealed []byte) error {
	if !n.enter() {
		return ErrClosed
	}
	defer n.leave()
	applied, _, out, err := n.ingestSealed(sealed, "", ViaLocal)
	if errors.Is(err, directory.ErrDuplicate) {
		if h, typ, ok := n.heldHash(sealed); ok {
			var tried bool
			if tried, out, err = n.persistHeld(h); tried {
				if err != nil {
					return err
				}
				applied.Hash, applied.Type = h, typ
			} else {
				err = directory.ErrDuplicate
			}
		}
	}
	if err != nil {
		return err
	}
	n.gossip(ctx, applied.Hash, applied.Type, out)
	return nil
}

// heldHash is the hash and type of a sealed record the node holds, when
// some record's write failed earlier (otherwise it does not look).
func (n *Node) heldHash(sealed []byte) (directory.Hash, directory.RecordType, bool) {
	n.mu.Lock()
	none := len(n.unpersisted) == 0
	n.mu.Unlock()
	if none {
		return directory.Hash{}, 0, false
	}
	s, err := directory.Unseal(sealed, n.keyringSnapshot())
	if err != nil {
		return directory.Hash{}, 0, false
	}
	u, err := s.Decode(n.cfg.Network)
	if err != nil {
		return directory.Hash{}, 0, false
	}
	return u.Hash(), u.Type(), true
}

// waitRoom holds a record the node is about to gossip back while its
// peers' outbound queues are nearly full (outQueues.waitRoom with
// ownQueueRoom). The record is durable already: a context that ends
// meanwhile only leaves it to sync, and so does the node closing, which
// does not wait out the pacing.
func (n *Node) waitRoom(ctx context.Context) {
	if n.outq == nil {
		return
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(n.ctx, cancel)()
	n.outq.waitRoom(ctx, ownQueueRoom, ownQueueWait)
}

func (n *Node) gossip(ctx context.Context, h directory.Hash, typ directory.RecordType, sealed []byte) {
	if sealed == nil {
		return
	}
	t, err := n.topicFor(sealed, onEntriesTopic(typ))
	if err != nil || t == nil {
		// Sealed under a key whose topics the node is not on (or
		// could not join): sync carries it.
		n.log.Debug("record not gossiped: not on its key's topic; sync will carry it", "record", h.Short(), "err", err)
		return
	}
	n.waitRoom(ctx)
	if err := t.Publish(ctx, sealed); err != nil {
		// The record is durable; sync carries it to peers at the next
		// round even if gossip failed.
		n.log.Warn("gossip failed; sync will carry the record", "record", h.Short(), "err", err)
	}
}

// Rotate starts a new read-key epoch on a steward's node: a fresh key,
// sealed to every current recipient (State.Recipients) in as many pages as
// they need, signed by this node's identity, published. It takes effect at once when the charter's
// threshold is 1, or when after names an effective revocation (the
// automatic rotation that follows it); otherwise it is a proposal that other
// stewards approve. after may be zero.
func (n *Node) Rotate(ctx context.Context, after directory.Hash) (*directory.Record, error) {
	st := n.state
	c := st.Charter()
	if c == nil {
		return nil, errors.New("node: rotate: the charter is not known yet")
	}
	me := n.id.Public()
	if !slices.Contains(c.StewardKeys(), me) || st.IsRevoked(me) {
		return nil, errors.New("node: rotate: only an unrevoked steward of the current charter can rotate the read key")
	}
	// The number follows the state's effective epoch, never a key this
	// node happens to hold: a key for an epoch the network never accepted
	// (one steward's lone epoch numbered 2^64-1, say) would make the next
	// number wrap, or skip ahead of the chain.
	cur := st.CurrentEpoch()
	if cur == 0 {
		return nil, errors.New("node: rotate: no read-key epoch is effective yet; the network's first epoch needs its stewards' approvals before the key can rotate")
	}
	if cur == math.MaxUint64 {
		return nil, fmt.Errorf("node: rotate: the current epoch is %d, the last number there is; no further epoch can follow it", cur)
	}
	return n.rotateTo(ctx, cur+1, after)
}

// RotateRival seals a new read key to every recipient as an epoch of the
// current number, a rival of the effective one, naming the revocation
// after. It answers one steward's lone rotation that left unrevoked
// stewards out (the daemon's key worker decides when): two valid epochs
// of one number go to the one more stewards signed, and co-stewards
// approve the rival that seals to everyone, not the one that does not.
func (n *Node) RotateRival(ctx context.Context, after directory.Hash) (*directory.Record, error) {
	st := n.state
	c := st.Charter()
	me := n.id.Public()
	if c == nil || !slices.Contains(c.StewardKeys(), me) || st.IsRevoked(me) {
		return nil, errors.New("node: rotate: only an unrevoked steward of the current charter can rotate the read key")
	}
	cur := st.CurrentEpoch()
	if cur < 2 {
		return nil, errors.New("node: rotate: the first epoch has no rival rotation; it needs the stewards' approvals")
	}
	return n.rotateTo(ctx, cur, after)
}

func (n *Node) rotateTo(ctx context.Context, number uint64, after directory.Hash) (*directory.Record, error) {
	st := n.state
	c := st.Charter()
	// Sealing to thousands of recipients takes seconds of every core;
	// callers run it off the node's loops (the daemon's key worker).
	body, pages, err := directory.NewEpoch(st.Network(), number, c.Version, after, directory.NewReadKey(), st.Recipients(), n.cfg.Now(), c.Policy.MaxRecordSize())
	if err != nil {
		return nil, fmt.Errorf("node: rotate: %w", err)
	}
	return n.PublishRotation(ctx, body, pages)
}

// Status is a snapshot of the node's health.
type Status struct {
	PeerID     peer.ID
	Addrs      []ma.Multiaddr
	Peers      int // connected peers
	TopicPeers int // peers on the network's GossipSub topic
	// LastSync is when this node last finished pulling from a peer, and
	// LastSyncPeers how many distinct peers it pulled from recently (in
	// the last two sync intervals).
	LastSync      time.Time
	LastSyncPeers int
	// FreshAsOf is the last time this node is known to have held
	// everything a peer (or the DHT) had: the "fresh as of" people see.
	FreshAsOf time.Time
	Epoch     uint64 // highest effective epoch in the state
	KeyEpoch  uint64 // newest read key this node holds
	Records   int    // records in the store
	// Unpersisted counts records the state holds but the store could not
	// write yet; nonzero means the disk is failing.
	Unpersisted int
	DHTPeers    int // DHT routing table size; 0 without a DHT
	// DHTStore is what this node holds in the DHT for the network (its
	// own records and others', bounded by dhtstore's quotas) and how many
	// puts the storage policy refused; zero without a DHT.
	DHTStore dhtstore.Usage
	Digest   directory.Hash
	// Accepted counts the records this node accepted since it started,
	// by the path they came in on.
	Accepted map[Via]int
	// Duplicates counts the records that reached this node once more,
	// after it had them (bytes its link carried for nothing), by path.
	Duplicates map[Via]int
	// KeyMismatches lists effective epochs whose package for this node
	// holds another key than the epoch commits to (equivocation by the
	// epoch's signers), ascending.
	KeyMismatches []uint64
	// HeldBack lists the organizations whose entry versions this node
	// held back under the charter's update rate since it started.
	HeldBack []AuthorHeld
	// StoreRepair is set when the node found its store damaged at start
	// and rebuilt it: the operator should check the disk.
	StoreRepair *StoreRepair
}

// Status returns a snapshot of the node's health.
func (n *Node) Status() Status {
	st := Status{
		PeerID: n.host.ID(),
		Addrs:  n.Addrs(),
		Peers:  len(n.host.Network().Peers()),
		Epoch:  n.state.CurrentEpoch(),
		Digest: n.state.Digest(),
	}
	st.TopicPeers = n.topicPeers()
	st.LastSync, st.LastSyncPeers = n.sync.recent(n.sync.recentWindow())
	n.mu.Lock()
	st.KeyEpoch, _, _ = n.keyring.Current()
	st.Records = len(n.stored)
	st.Unpersisted = len(n.unpersisted)
	st.Accepted = maps.Clone(n.accepted)
	st.Duplicates = maps.Clone(n.duplicates)
	st.KeyMismatches = slices.Sorted(maps.Keys(n.keyMismatch))
	n.mu.Unlock()
	st.FreshAsOf = n.FreshAsOf()
	st.HeldBack = n.HeldBack()
	st.StoreRepair = n.repair
	if n.dht != nil {
		st.DHTPeers = n.dht.RoutingTableSize()
		st.DHTStore = n.dht.Usage()
	}
	return st
}

// FreshAsOf is the last time this node is known to have held everything a
// peer (or the DHT) had. Unlike Status it costs no state digest, so callers
// that only need freshness (every search result carries it) use this.
func (n *Node) FreshAsOf() time.Time {
	fresh, _ := n.sync.recent(n.sync.recentWindow())
	n.mu.Lock()
	dht := n.lastDHTFetch
	n.mu.Unlock()
	if dht.After(fresh) {
		fresh = dht
	}
	return fresh
}

// Keyring returns a copy of the read keys the node holds.
func (n *Node) Keyring() directory.Keyring {
	return maps.Clone(*n.keys.Load())
}

// PeerScore is the GossipSub score this node gives p, as of the last
// inspection (every second). A sender of invalid records falls below
// GraylistThreshold and is ignored.
func (n *Node) PeerScore(p peer.ID) (float64, bool) {
	n.scoresMu.Lock()
	defer n.scoresMu.Unlock()
	s, ok := n.scores[p]
	return s, ok
}

func (n *Node) publishKeyring() {
	kr := maps.Clone(n.keyring)
	n.keys.Store(&kr)
	// The topics follow the keys (topics.go).
	n.wakeTopics()
}

func (n *Node) keyringSnapshot() directory.Keyring { return *n.keys.Load() }

// sealKey is the key this node seals under: the state's current effective
// epoch, or failing that the newest effective epoch it holds a key for;
// before any epoch is effective (a new network whose first epoch waits for
// approvals) and for a node that holds none of the effective keys, epoch
// 1's. Never a key merely because it is the highest held: a key from an
// epoch the network does not accept may be known to whoever made it.
func (n *Node) sealKey() (uint64, directory.ReadKey, bool) {
	return directory.SealingKey(n.state.Epochs(), n.keyringSnapshot())
}

// sealingKeyring is the keyring without the keys above the sealing epoch:
// what the node reseals for peers and puts in the DHT with. A key the state
// does not back yet (an invitee's for an epoch it has not seen, or one
// planted in a tampered keystore) is never used to seal.
func (n *Node) sealingKeyring() directory.Keyring {
	kr := n.keyringSnapshot()
	top := n.sealEpoch()
	out := make(directory.Keyring, len(kr))
	for e, k := range kr {
		if e <= top {
			out[e] = k
		}
	}
	return out
}

// sealEpoch is the epoch of sealKey.
func (n *Node) sealEpoch() uint64 {
	e, _, _ := n.sealKey()
	return e
}

// connectBootstrap dials every bootstrap peer we are not connected to, in
// parallel, and waits for the dials (bounded by ctx and a timeout).
func (n *Node) connectBootstrap(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, ai := range n.bootstrap {
		if ai.ID == n.host.ID() || n.host.Network().Connectedness(ai.ID) == network.Connected {
			continue
		}
		wg.Go(func() {
			if err := n.host.Connect(ctx, ai); err != nil {
				n.log.Debug("bootstrap peer unreachable", "peer", ai.ID, "err", err)
			}
		})
	}
	wg.Wait()
}

// syncLoop keeps the node connected to its bootstrap peers and runs a sync
// round with a few random peers every SyncInterval (with jitter, so nodes
// started together do not sync in lockstep).
func (n *Node) syncLoop() {
	for {
		jitter := time.Duration(float64(n.cfg.SyncInterval) * (0.8 + 0.4*randFloat()))
		select {
		case <-n.ctx.Done():
			return
		case <-time.After(jitter):
		}
		n.connectBootstrap(n.ctx)
		peers := n.host.Network().Peers()
		shuffle(peers)
		picked := 0
		for _, p := range peers {
			if picked == n.cfg.SyncFanout {
				break
			}
			if n.sync.request(p) {
				picked++
			}
		}
	}
}

// maintainLoop does the slow housekeeping: expiring entries, retrying
// store writes and key saves that failed.
func (n *Node) maintainLoop() {
	expire := time.NewTicker(n.cfg.ExpireInterval)
	defer expire.Stop()
	retry := time.NewTicker(min(n.cfg.ExpireInterval, 10*time.Second))
	defer retry.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-expire.C:
			n.expire()
		case <-retry.C:
			n.retryPersist()
			n.maybeCheckpoint()
			n.mu.Lock()
			unsaved := n.keysUnsaved
			n.removeOrphansLocked()
			n.mu.Unlock()
			if unsaved {
				n.saveKeys()
			}
		}
	}
}

// expire drops expired entries from the state, then from the store.
func (n *Node) expire() {
	if !n.enter() {
		return
	}
	defer n.leave()
	if dropped := n.state.Expire(); dropped > 0 {
		n.log.Info("expired entries dropped", "count", dropped)
	}
	n.pruneStore()
	n.retirePages()
}

// pruneStore deletes stored records the state no longer pools.
func (n *Node) pruneStore() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.removeOrphansLocked()
	if n.inflight > 0 || len(n.unpersisted) > 0 {
		// A stored record the state no longer pools may have been
		// superseded by one not yet on disk; the next round prunes it.
		return
	}
	var gone []directory.Hash
	for h := range n.stored {
		if !n.state.Has(h) {
			gone = append(gone, h)
		}
	}
	n.removeLocked(gone)
}
