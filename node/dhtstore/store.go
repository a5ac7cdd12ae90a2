package dhtstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/namespace"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	pb "github.com/libp2p/go-libp2p-kad-dht/pb"
	kb "github.com/libp2p/go-libp2p-kbucket"
	record "github.com/libp2p/go-libp2p-record"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/routing"
)

// Errors callers can match with errors.Is.
var (
	// ErrNotStored means a Put reached no peer that kept the record: the
	// record is not in the DHT, whatever kad-dht's PutValue said.
	ErrNotStored = errors.New("no DHT peer stored the record")
	// ErrSuperseded means the DHT already holds a better record for the
	// slot (a higher entry seq, a newer manifest), so ours was refused.
	ErrSuperseded = errors.New("the DHT holds a newer record for this slot")
	// ErrNotFound means no valid record was found for a slot.
	ErrNotFound = errors.New("no record found in the DHT")
	// ErrNoPeers means the routing table is empty: the node is alone.
	ErrNoPeers = errors.New("no DHT peer is connected")
	// ErrNoReadKey means the keyring holds no read key yet.
	ErrNoReadKey = errors.New("the keyring holds no read key")
)

// Defaults for Options fields left zero.
const (
	// MaxRecordAge is how long a DHT node keeps a value it was given before
	// dropping it. kad-dht's own default (48h in v0.42) is left for the
	// public network; we set ours so the republish schedule below is
	// reasoned against a number we own, and so a record nobody republishes
	// any more (its publisher revoked or gone) leaves the DHT in a day and
	// a half.
	MaxRecordAge = 36 * time.Hour
	// DefaultRepublishInterval leaves two missed republishes of slack
	// inside MaxRecordAge.
	DefaultRepublishInterval = 12 * time.Hour
	// DefaultAdvertiseInterval is how often the rendezvous provider
	// records are renewed; they also roll over with the UTC day.
	DefaultAdvertiseInterval = time.Hour
	// DefaultCheckInterval is how often background work looks at the
	// keyring (a new epoch means re-putting everything under new keys),
	// the routing table and its schedule.
	DefaultCheckInterval = 10 * time.Second
	// DefaultRequestTimeout bounds one Get during a Fetch.
	DefaultRequestTimeout = 15 * time.Second
	// DefaultFetchTimeout bounds one whole Fetch.
	DefaultFetchTimeout = 3 * time.Minute
	// DefaultFetchConcurrency is how many Gets a Fetch runs at once.
	DefaultFetchConcurrency = 8

	// lookbackEpochs is how many epochs before the current one Get tries
	// when a slot is not found under the current key. Records are re-put
	// under the new keys within a check interval of a rotation, so one
	// epoch back covers the window in which they are not there yet.
	lookbackEpochs = 1
	// confirmConcurrency is how many peers Put asks at once whether they
	// hold the record it just stored.
	confirmConcurrency = 3
)

// Options configures a Store. Network and Keyring are required.
type Options struct {
	// Network is the network whose records this store handles.
	Network directory.NetworkID
	// Keyring returns the read keys the node holds now. It is called on
	// every validation, so it must be cheap, and the map it returns must
	// not be modified afterwards (return a fresh or immutable snapshot).
	// The highest epoch is the current one: Put seals and blinds under it.
	// It is called from DHT handler goroutines, so it must be safe for
	// concurrent use.
	Keyring func() directory.Keyring
	// Bootstrap peers are dialed when the routing table is empty. There are
	// no built-in bootstrap peers: a Ceiba node never joins the public
	// IPFS DHT.
	Bootstrap []peer.AddrInfo
	// Now stamps manifests and picks the rendezvous day. Schedules
	// (republish, advertise) run on the real clock. Nil means time.Now.
	Now func() time.Time
	// Records lists what this node keeps in the DHT: its own entries and
	// whatever else it publishes. The republish loop re-puts all of them
	// every RepublishInterval and after an epoch change. Nil means none.
	Records func() []*directory.Record
	// RepublishInterval defaults to DefaultRepublishInterval. Keep it well
	// under MaxRecordAge.
	RepublishInterval time.Duration
	// AdvertiseInterval is how often the node renews its rendezvous
	// provider records. Zero means DefaultAdvertiseInterval; negative
	// disables the loop (call Advertise yourself).
	AdvertiseInterval time.Duration
	// CheckInterval defaults to DefaultCheckInterval.
	CheckInterval time.Duration
	// MinReplicas is how many peers must be confirmed to hold a record for
	// Put to succeed. Zero means 1.
	MinReplicas int
	// RequestTimeout, FetchTimeout and FetchConcurrency bound Fetch; zero
	// means the defaults above.
	RequestTimeout   time.Duration
	FetchTimeout     time.Duration
	FetchConcurrency int
	// ChargeServed, if set, reports whether peer p may be sent n more
	// bytes of a value this node holds, drawing them from p's budget: a
	// GET_VALUE answer is a sealed record of up to 256 KiB for a request
	// of 65 bytes, so without it any peer that can compute slot keys (a
	// reader can) makes a node send without limit. A request it refuses
	// is answered with nothing (the stream closes). Nil means no limit.
	ChargeServed func(p peer.ID, n int) bool
	// AllowPrivateAddrs keeps loopback and private-range (LAN) addresses
	// that peers announce through the DHT, and announces ours. Leave it off
	// on the internet: a hostile peer could otherwise steer this node's
	// dials at services on its own machine or LAN, and the node would
	// hand out addresses nobody outside can reach. Turn it on for `ceiba
	// demo`, tests on 127.0.0.1, and networks that live on one LAN or a
	// private overlay (containers, WireGuard).
	AllowPrivateAddrs bool
	// ClientMode makes the node use the DHT without serving it: it stores
	// nothing for others and stays out of their routing tables. For nodes
	// that are not reachable (behind NAT without a relay) or that should
	// not be seen answering DHT queries. Default is server mode: a private
	// network has no one else to serve it, and ModeAuto would leave
	// unreachable-by-AutoNAT loopback and LAN networks all clients.
	ClientMode bool
	// Authority is what the node's directory knows of keys: the store
	// holds for others only values whose signers it admits, within the
	// quotas in quota.go. Nil admits no one: values from others then share
	// only the small pending pool.
	Authority Authority
	// Self is the node's identity key; values it signed are always held.
	Self directory.PublicKey
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// nobody is the Authority of a store given none: no key is admitted.
type nobody struct{}

func (nobody) Role(directory.PublicKey) Role { return RoleNone }
func (nobody) MaxRecordBytes() int           { return directory.DefaultMaxRecordBytes }

// Store is the DHT layer of one node. It is safe for concurrent use.
type Store struct {
	opts Options
	h    host.Host
	dht  *dht.IpfsDHT
	pm   *pb.ProtocolMessenger
	val  *validator
	qs   *quotaStore
	ps   *providerStore
	log  *slog.Logger

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error

	mu        sync.Mutex
	manifests map[directory.PublicKey][]*directory.Record // last published pages, for republish
	issued    map[directory.PublicKey]int64               // last manifest Issued per signer
	// manifestRetry are the pages of each signer's manifest whose last put
	// failed.
	manifestRetry map[directory.PublicKey]map[int]bool

	republishMu sync.Mutex // one republish pass at a time
}

// New starts the DHT on h, storing what it keeps for the network in store
// under the /dht prefix (so store can be the node's main datastore). It dials the
// bootstrap peers in the background and starts the republish and advertise
// loops; it does not wait for peers.
//
// The caller owns h and store: Close the Store, then the host, then store
// (kad-dht handlers still in flight may touch store until the host is
// closed).
func New(h host.Host, store ds.Batching, opts Options) (*Store, error) {
	if opts.Keyring == nil {
		return nil, errors.New("dhtstore: Options.Keyring is required")
	}
	if opts.Network == (directory.NetworkID{}) {
		return nil, errors.New("dhtstore: Options.Network is required")
	}
	if store == nil {
		return nil, errors.New("dhtstore: a datastore is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RepublishInterval <= 0 {
		opts.RepublishInterval = DefaultRepublishInterval
	}
	if opts.AdvertiseInterval == 0 {
		opts.AdvertiseInterval = DefaultAdvertiseInterval
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = DefaultCheckInterval
	}
	if opts.MinReplicas <= 0 {
		opts.MinReplicas = 1
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = DefaultRequestTimeout
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = DefaultFetchTimeout
	}
	if opts.FetchConcurrency <= 0 {
		opts.FetchConcurrency = DefaultFetchConcurrency
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}

	if opts.Authority == nil {
		opts.Authority = nobody{}
	}

	val := &validator{net: opts.Network, keyring: opts.Keyring}
	dstore := namespace.Wrap(store, ds.NewKey("/dht"))
	qs := newQuotaStore(dstore, val, opts.Authority, opts.Self, opts.Logger.With("component", "dhtstore"))
	qs.chargeServed = opts.ChargeServed
	if err := qs.load(context.Background()); err != nil {
		return nil, fmt.Errorf("dhtstore: counting what the DHT store holds: %w", err)
	}
	ps := newProviderStore(dstore, opts.Logger.With("component", "dhtstore"))
	if err := ps.load(context.Background()); err != nil {
		return nil, fmt.Errorf("dhtstore: counting the provider records held: %w", err)
	}
	mode := dht.ModeServer
	if opts.ClientMode {
		mode = dht.ModeClient
	}
	dopts := []dht.Option{
		// A protocol of our own keeps Ceiba nodes out of the public IPFS
		// DHT and it out of ours; with a non-default prefix kad-dht also
		// stops insisting on the public network's pk/ipns validators.
		dht.ProtocolPrefix("/ceiba"),
		dht.Mode(mode),
		dht.Datastore(dstore),
		// Values go through the storage policy; provider records (the
		// rendezvous) through bounds per peer and in total.
		dht.ValueDatastore(qs),
		dht.ProviderDatastore(ps),
		dht.OnRequestHook(qs.onRequest),
		// Replacing the validator set drops the default /pk and /ipns
		// namespaces: nothing but sealed Ceiba records may be stored, so a
		// keyless peer cannot use our nodes as free storage.
		dht.Validator(record.NamespacedValidator{}),
		dht.NamespacedValidator(keyNamespace, val),
		dht.MaxRecordAge(MaxRecordAge),
		dht.RoutingTableFilter(anyConnectedPeer),
		dht.QueryFilter(queryFilter(h, opts.AllowPrivateAddrs)),
	}
	if !opts.AllowPrivateAddrs {
		dopts = append(dopts, dht.AddressFilter(publicAddrs))
	}
	if len(opts.Bootstrap) > 0 {
		dopts = append(dopts, dht.BootstrapPeers(opts.Bootstrap...))
	}
	d, err := dht.New(h, dopts...)
	if err != nil {
		return nil, fmt.Errorf("dhtstore: starting the DHT: %w", err)
	}
	pm, err := pb.NewProtocolMessenger(d.MessageSender())
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("dhtstore: %w", err)
	}
	s := &Store{
		opts:          opts,
		h:             h,
		dht:           d,
		pm:            pm,
		val:           val,
		qs:            qs,
		ps:            ps,
		log:           opts.Logger.With("component", "dhtstore"),
		manifests:     map[directory.PublicKey][]*directory.Record{},
		issued:        map[directory.PublicKey]int64{},
		manifestRetry: map[directory.PublicKey]map[int]bool{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Go(s.bootstrap)
	s.wg.Go(s.republishLoop)
	if opts.AdvertiseInterval > 0 {
		s.wg.Go(s.advertiseLoop)
	}
	return s, nil
}

// Close stops the background loops and the DHT. It does not close the host
// or the datastore. Calling it again does nothing.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.wg.Wait()
		s.closeErr = s.dht.Close()
		// kad-dht's handlers for streams already open outlive its Close
		// until the host closes, and the caller may close the datastore
		// before that: from here on they cannot write values into it.
		s.qs.close()
	})
	return s.closeErr
}

// Usage is what the store holds in the DHT for the network, its own
// records and others', and how many puts its storage policy refused.
func (s *Store) Usage() Usage {
	u := s.qs.usage()
	u.Providers, u.ProvidersRefused = s.ps.usage()
	return u
}

// RoutingTableSize is how many DHT peers the node knows: zero means it is
// alone and nothing it puts will be stored.
func (s *Store) RoutingTableSize() int { return s.dht.RoutingTable().Size() }

// bootstrap dials the configured peers once at start. kad-dht dials them
// itself only when its routing table is empty at the moment it checks, and
// then only two of them; dialing all of them now makes a fresh node useful
// within a round trip instead of within its first refresh.
func (s *Store) bootstrap() {
	if len(s.opts.Bootstrap) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, ai := range s.opts.Bootstrap {
		if ai.ID == s.h.ID() {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(s.ctx, s.opts.RequestTimeout)
			defer cancel()
			if err := s.h.Connect(ctx, ai); err != nil {
				s.log.Debug("bootstrap dial failed", "peer", ai.ID, "err", err)
			}
		})
	}
	wg.Wait()
	// Fill the table beyond the bootstrap peers right away rather than at
	// the first periodic refresh.
	select {
	case <-s.dht.RefreshRoutingTable():
	case <-s.ctx.Done():
	}
}

// Put seals r under the current epoch and stores it under its blinded slot
// key, then confirms that at least Options.MinReplicas peers hold it (or a
// copy of the same record). kad-dht's PutValue reports success even when
// every peer refused the value or none was reachable, so the confirmation
// is what makes a nil error mean "the record is in the DHT".
func (s *Store) Put(ctx context.Context, r *directory.Record) error {
	epoch, rk, ok := s.opts.Keyring().Current()
	if !ok {
		return fmt.Errorf("dhtstore: put: %w", ErrNoReadKey)
	}
	return s.putUnder(ctx, r, epoch, rk)
}

func (s *Store) putUnder(ctx context.Context, r *directory.Record, epoch uint64, rk directory.ReadKey) error {
	// Every DHT node will check this; failing here names the problem
	// instead of reporting that no peer stored the record.
	if err := r.Verify(); err != nil {
		return fmt.Errorf("dhtstore: put: %w", err)
	}
	slot, err := r.Slot()
	if err != nil {
		return fmt.Errorf("dhtstore: put: %w", err)
	}
	key := directory.BlindSlot(rk, directory.SlotIDOf(slot))
	sealed := directory.Seal(r, rk)
	if s.dht.RoutingTable().Size() == 0 {
		return fmt.Errorf("dhtstore: put %s: %w: %w", slot, ErrNotStored, ErrNoPeers)
	}
	targets, err := s.putValue(ctx, key, sealed)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("dhtstore: put %s: %w", slot, ctx.Err())
		}
		// kad-dht refuses locally, before any network traffic, to replace
		// a better stored value; it says so only in an unexported error's
		// text.
		if strings.Contains(err.Error(), "can't replace a newer value") {
			return fmt.Errorf("dhtstore: put %s: %w", slot, ErrSuperseded)
		}
		return fmt.Errorf("dhtstore: put %s: %w: %w", slot, ErrNotStored, err)
	}
	held, asked, err := s.confirm(ctx, key, sealed, r, targets)
	switch {
	case held >= s.opts.MinReplicas:
		s.log.Debug("record stored", "slot", slot, "epoch", epoch, "confirmed", held)
		return nil
	case errors.Is(err, ErrSuperseded):
		return fmt.Errorf("dhtstore: put %s: %w", slot, err)
	case ctx.Err() != nil:
		return fmt.Errorf("dhtstore: put %s: %w", slot, ctx.Err())
	}
	detail := fmt.Sprintf("%d of %d peers closest to the key hold it, %d required; they may lack the epoch %d read key or be unreachable", held, asked, s.opts.MinReplicas, epoch)
	if err != nil {
		detail += ": " + err.Error()
	}
	return fmt.Errorf("dhtstore: put %s: %w (%s)", slot, ErrNotStored, detail)
}

// putValue runs kad-dht's PutValue (local store, lookup, one PUT_VALUE per
// closest peer) and returns the peers it sent the value to, which it
// reports only as query events.
func (s *Store) putValue(ctx context.Context, key string, sealed []byte) ([]peer.ID, error) {
	evCtx, cancel := context.WithCancel(ctx)
	evCtx, events := routing.RegisterForQueryEvents(evCtx)
	var targets []peer.ID
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Drained until closed: kad-dht blocks on a full event channel.
		for ev := range events {
			if ev.Type == routing.Value && !slices.Contains(targets, ev.ID) {
				targets = append(targets, ev.ID)
			}
		}
	}()
	err := s.dht.PutValue(evCtx, key, sealed)
	cancel()
	<-done
	return targets, err
}

// confirm asks peers, nearest to the key first, whether they hold the record
// now, until MinReplicas say yes. A peer holds it if it returns the same
// sealed value or another sealing of the same record (a concurrent
// republish). A peer returning a better record means ours lost.
func (s *Store) confirm(ctx context.Context, key string, sealed []byte, r *directory.Record, targets []peer.ID) (held, asked int, err error) {
	if len(targets) == 0 {
		// kad-dht did not tell us where it put the value (its events are
		// not a stable API); the routing table's nearest peers are where a
		// lookup would have ended in a network of our size.
		targets = s.dht.RoutingTable().NearestPeers(kb.ConvertKey(key), s.dht.BucketSize())
	}
	want := r.Hash()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var firstErr error
	sem := make(chan struct{}, confirmConcurrency)
	enough := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return held >= s.opts.MinReplicas || errors.Is(firstErr, ErrSuperseded)
	}
	var wg sync.WaitGroup
	for _, p := range targets {
		if enough() {
			break
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil || enough() {
			break
		}
		asked++
		wg.Go(func() {
			defer func() { <-sem }()
			rctx, rcancel := context.WithTimeout(ctx, s.opts.RequestTimeout)
			defer rcancel()
			rec, _, gerr := s.pm.GetValue(rctx, p, key)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case gerr != nil:
				if firstErr == nil {
					firstErr = fmt.Errorf("peer %s: %w", p.ShortString(), gerr)
				}
			case rec == nil || rec.GetValue() == nil:
			case bytes.Equal(rec.GetValue(), sealed):
				held++
			default:
				theirs, verr := s.val.open(key, rec.GetValue())
				switch {
				case verr != nil:
				case theirs.Hash() == want:
					held++
				case directory.Better(theirs, r):
					firstErr = ErrSuperseded
					cancel()
				}
			}
			if held >= s.opts.MinReplicas {
				cancel()
			}
		})
	}
	wg.Wait()
	return held, asked, firstErr
}

// Get returns the best record the DHT holds for slot, trying the current
// epoch's key first and then the one before it (records reach their new
// keys shortly after a rotation, not at the same instant). The record opened
// and verified and belongs to slot; nothing more is known about it until
// State.Apply accepts it.
func (s *Store) Get(ctx context.Context, slot directory.SlotID) (*directory.Record, error) {
	kr := s.opts.Keyring()
	if len(kr) == 0 {
		return nil, fmt.Errorf("dhtstore: get: %w", ErrNoReadKey)
	}
	epochs := make([]uint64, 0, len(kr))
	for e := range kr {
		epochs = append(epochs, e)
	}
	slices.Sort(epochs)
	slices.Reverse(epochs)
	epochs = epochs[:min(len(epochs), 1+lookbackEpochs)]
	var lastErr error
	for _, e := range epochs {
		key := directory.BlindSlot(kr[e], slot)
		v, err := s.dht.GetValue(ctx, key)
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("dhtstore: get %x: %w", slot[:6], ctx.Err())
			}
			if !errors.Is(err, routing.ErrNotFound) {
				lastErr = err
			}
			continue
		}
		r, err := s.val.open(key, v)
		if err != nil {
			// GetValue validated it already; a failure now means the
			// keyring changed under us.
			lastErr = err
			continue
		}
		return r, nil
	}
	if lastErr == nil && s.dht.RoutingTable().Size() == 0 {
		lastErr = ErrNoPeers
	}
	if lastErr != nil {
		return nil, fmt.Errorf("dhtstore: get %x: %w: %w", slot[:6], ErrNotFound, lastErr)
	}
	return nil, fmt.Errorf("dhtstore: get %x: %w", slot[:6], ErrNotFound)
}
