package sim

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/dhtstore"
)

// DHTNet is n DHT nodes (node/dhtstore on mock hosts) without the rest of
// a Ceiba node, so that the DHT's own latency is what is timed: a put of a
// blinded record, a get, and a fresh reader fetching a whole directory
// from an invite.
type DHTNet struct {
	Fix    *Fixture
	Orgs   []*directory.Identity
	Hosts  []host.Host
	Stores []*dhtstore.Store

	// admitted is what every DHT node's directory admits: the storage
	// policy stores for others only what admitted keys signed, and without
	// it every record would go to the small pool for signers not admitted,
	// which a 1,000-entry directory overflows.
	admitted *directory.State

	mn    mocknet.Mocknet
	rng   *mrand.Rand
	log   *slog.Logger
	extra atomic.Int64
}

// NewDHTNet starts n DHT nodes with links of the given one-way latency,
// each bootstrapped from the first, and waits until their routing tables
// hold at least min(n-1, 15) peers.
func NewDHTNet(ctx context.Context, n int, latency time.Duration, seed uint64) (*DHTNet, error) {
	fix, err := NewFixture(stewards, 2, directory.Policy{})
	if err != nil {
		return nil, err
	}
	d := &DHTNet{Fix: fix, admitted: directory.NewState(fix.Net, nil), mn: mocknet.New(), rng: newRand(seed), log: slog.New(slog.DiscardHandler)}
	if _, err := d.admitted.Apply(fix.Genesis); err != nil {
		return nil, err
	}
	d.mn.SetLinkDefaults(mocknet.LinkOptions{Latency: latency})
	ok := false
	defer func() {
		if !ok {
			d.Close()
		}
	}()
	for i := range n {
		h, err := d.addHost(i)
		if err != nil {
			return nil, err
		}
		d.Hosts = append(d.Hosts, h)
	}
	if err := d.mn.LinkAll(); err != nil {
		return nil, err
	}
	for i, h := range d.Hosts {
		var boot []peer.AddrInfo
		if i > 0 {
			boot = []peer.AddrInfo{{ID: d.Hosts[0].ID(), Addrs: d.Hosts[0].Addrs()}}
		}
		s, err := d.newStore(h, boot)
		if err != nil {
			return nil, err
		}
		d.Stores = append(d.Stores, s)
	}
	want := min(n-1, 15)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		full := 0
		for _, s := range d.Stores {
			if s.RoutingTableSize() >= want {
				full++
			}
		}
		if full == n {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("sim: %d of %d DHT nodes have %d routing table peers", full, n, want)
		}
		if err := sleep(ctx, 100*time.Millisecond); err != nil {
			return nil, err
		}
	}
	ok = true
	return d, nil
}

func (d *DHTNet) addHost(i int) (host.Host, error) {
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, err
	}
	return d.mn.AddPeer(sk, ma.StringCast(fmt.Sprintf("/ip4/10.%d.%d.%d/tcp/4001", 200+(i>>16)&0x3f, (i>>8)&0xff, i&0xff)))
}

func (d *DHTNet) newStore(h host.Host, boot []peer.AddrInfo) (*dhtstore.Store, error) {
	kr := d.Fix.Keyring()
	return dhtstore.New(h, dssync.MutexWrap(datastore.NewMapDatastore()), dhtstore.Options{
		Network:           d.Fix.Net,
		Keyring:           func() directory.Keyring { return kr },
		Bootstrap:         boot,
		AllowPrivateAddrs: true,
		AdvertiseInterval: -1,
		Authority:         dhtstore.StateAuthority{State: d.admitted},
		Logger:            d.log,
	})
}

// Close stops every DHT node and the mock network.
func (d *DHTNet) Close() error {
	parallel(len(d.Stores), func(i int) error { return d.Stores[i].Close() })
	return d.mn.Close()
}

// PutGet puts r from a random node and gets it back from another.
func (d *DHTNet) PutGet(ctx context.Context, r *directory.Record) (put, get time.Duration, err error) {
	i := d.rng.IntN(len(d.Stores))
	j := (i + 1 + d.rng.IntN(len(d.Stores)-1)) % len(d.Stores)
	t0 := time.Now()
	if err := d.Stores[i].Put(ctx, r); err != nil {
		return 0, 0, err
	}
	put = time.Since(t0)
	name, err := r.Slot()
	if err != nil {
		return 0, 0, err
	}
	t0 = time.Now()
	got, err := d.Stores[j].Get(ctx, directory.SlotIDOf(name))
	get = time.Since(t0)
	if err != nil {
		return put, get, err
	}
	if got.Hash() != r.Hash() {
		return put, get, fmt.Errorf("sim: the DHT returned another record for the slot")
	}
	return put, get, nil
}

// Populate puts a directory in the DHT as its nodes would: the founding
// records, orgs memberships and entries entries spread over the
// organizations, and every signer's manifest.
func (d *DHTNet) Populate(ctx context.Context, orgs, entries int) error {
	bySigner := map[*directory.Identity][]*directory.Record{}
	for _, s := range d.Fix.Stewards {
		bySigner[s] = append(bySigner[s], d.Fix.Genesis)
	}
	for i := range orgs {
		org, err := directory.NewIdentity()
		if err != nil {
			return err
		}
		d.Orgs = append(d.Orgs, org)
		m, err := d.Fix.Admit(org, fmt.Sprintf("Colectivo %d", i+1))
		if err != nil {
			return err
		}
		if _, err := d.admitted.Apply(m); err != nil {
			return fmt.Errorf("sim: admitting %d: %w", i+1, err)
		}
		for _, s := range d.Fix.Stewards[:d.Fix.Threshold] {
			bySigner[s] = append(bySigner[s], m)
		}
	}
	for i := range entries {
		org := d.Orgs[i%orgs]
		r, err := d.Fix.Entry(org, fmt.Sprintf("servicio-%d", i), 1, Token(i))
		if err != nil {
			return err
		}
		bySigner[org] = append(bySigner[org], r)
	}
	seen := map[directory.Hash]bool{}
	var all []*directory.Record
	for _, recs := range bySigner {
		for _, r := range recs {
			if !seen[r.Hash()] {
				seen[r.Hash()] = true
				all = append(all, r)
			}
		}
	}
	// Each put goes from the node that would publish it in a real network;
	// here, from nodes taken round robin, sixteen at a time.
	sem := make(chan struct{}, 16)
	errs := make(chan error, len(all))
	for i, r := range all {
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			if err := d.Stores[i%len(d.Stores)].Put(pctx, r); err != nil {
				errs <- err
			}
		}()
	}
	for range cap(sem) {
		sem <- struct{}{}
	}
	close(errs)
	if err := <-errs; err != nil {
		return fmt.Errorf("sim: populating the DHT: %w", err)
	}
	k := 0
	for signer, recs := range bySigner {
		var slots []directory.SlotHead
		for _, r := range recs {
			name, err := r.Slot()
			if err != nil {
				return err
			}
			slots = append(slots, directory.SlotHead{Slot: directory.SlotIDOf(name), Head: directory.HeadOf(r.Hash())})
		}
		if err := d.Stores[k%len(d.Stores)].PublishManifest(ctx, signer, slots); err != nil {
			return fmt.Errorf("sim: manifest: %w", err)
		}
		k++
	}
	return nil
}

// InviteFetch starts a fresh reader that holds only what an invite gives
// (the network ID, the read key, the stewards' keys and one bootstrap
// address) and times it from start to holding the whole directory, then
// times a second walk of the same reader, which holds every record the
// manifests list (what a node cut off from its peers does every
// FetchInterval). It returns the two times and the number of entries the
// reader's state shows.
func (d *DHTNet) InviteFetch(ctx context.Context) (first, again time.Duration, entries int, err error) {
	i := len(d.Hosts) + int(d.extra.Add(1))
	h, err := d.addHost(i)
	if err != nil {
		return 0, 0, 0, err
	}
	defer h.Close()
	for _, o := range d.Hosts {
		if _, err := d.mn.LinkPeers(h.ID(), o.ID()); err != nil {
			return 0, 0, 0, err
		}
	}
	boot := d.Hosts[d.rng.IntN(len(d.Hosts))]
	start := time.Now()
	s, err := d.newStore(h, []peer.AddrInfo{{ID: boot.ID(), Addrs: boot.Addrs()}})
	if err != nil {
		return 0, 0, 0, err
	}
	defer s.Close()
	for s.RoutingTableSize() == 0 {
		if time.Since(start) > time.Minute {
			return 0, 0, 0, fmt.Errorf("sim: the reader found no DHT peer")
		}
		if err := sleep(ctx, time.Millisecond); err != nil {
			return 0, 0, 0, err
		}
	}
	st := directory.NewState(d.Fix.Net, nil)
	var seeds []directory.PublicKey
	for _, s := range d.Fix.Stewards {
		seeds = append(seeds, s.Public())
	}
	if _, err := s.FetchAll(ctx, st, seeds); err != nil {
		return 0, 0, 0, err
	}
	first = time.Since(start)
	start = time.Now()
	if _, err := s.FetchAll(ctx, st, seeds); err != nil {
		return 0, 0, 0, err
	}
	return first, time.Since(start), st.Stats().Entries, nil
}
