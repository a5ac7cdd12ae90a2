package dhtstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

// RendezvousCID is the provider key nodes holding key advertise on day
// (UTC). Only holders of the read key can compute it, and it changes daily
// and at every rotation, so DHT nodes can neither tell which network a
// provider record belongs to nor follow one network's rendezvous from day
// to day, and a revoked device cannot follow it past the rotation.
func RendezvousCID(key directory.ReadKey, day time.Time) cid.Cid {
	h, err := mh.Sum(directory.RendezvousKey(key, day), mh.SHA2_256, -1)
	if err != nil {
		panic(err) // SHA2-256 is always available
	}
	return cid.NewCidV1(cid.Raw, h)
}

// rendezvousDays are the keys a node advertises and searches: those of its
// newest read key (the one Put seals under) for today and yesterday.
// Covering two days on both sides means two nodes whose clocks sit on
// either side of midnight UTC still share one key. Only the newest read
// key: advertising the one before too would let a device revoked by the
// rotation keep finding every node until the next one. A node still on an
// older key reaches the peers it knew (bootstrap, peerstore), and the sync
// with any of them brings it the new key. Nil without a key.
func (s *Store) rendezvousDays() []cid.Cid {
	_, key, ok := s.opts.Keyring().Current()
	if !ok {
		return nil
	}
	now := s.opts.Now().UTC()
	return []cid.Cid{
		RendezvousCID(key, now),
		RendezvousCID(key, now.AddDate(0, 0, -1)),
	}
}

// rendezvousEpoch is the epoch of the key the rendezvous is derived from.
func (s *Store) rendezvousEpoch() uint64 {
	e, _, _ := s.opts.Keyring().Current()
	return e
}

// Advertise announces this node as a provider of today's and yesterday's
// rendezvous keys, so other nodes of the network find it with FindPeers.
// The background loop calls it every AdvertiseInterval unless that is
// negative.
func (s *Store) Advertise(ctx context.Context) error {
	if s.dht.RoutingTable().Size() == 0 {
		return fmt.Errorf("dhtstore: advertise: %w", ErrNoPeers)
	}
	if s.rendezvousDays() == nil {
		return fmt.Errorf("dhtstore: advertise: %w", ErrNoReadKey)
	}
	var errs []error
	for _, c := range s.rendezvousDays() {
		if err := s.dht.Provide(ctx, c, true); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("dhtstore: advertise: %w", err)
	}
	return nil
}

// FindPeers streams the other nodes that advertise the network's rendezvous
// keys, each once, and closes the channel when the searches end or ctx
// does. Connecting to them is the caller's choice.
func (s *Store) FindPeers(ctx context.Context) (<-chan peer.AddrInfo, error) {
	if s.dht.RoutingTable().Size() == 0 {
		return nil, fmt.Errorf("dhtstore: find peers: %w", ErrNoPeers)
	}
	if s.rendezvousDays() == nil {
		return nil, fmt.Errorf("dhtstore: find peers: %w", ErrNoReadKey)
	}
	out := make(chan peer.AddrInfo)
	var mu sync.Mutex
	seen := map[peer.ID]bool{s.h.ID(): true}
	var wg sync.WaitGroup
	for _, c := range s.rendezvousDays() {
		found := s.dht.FindProvidersAsync(ctx, c, 0)
		wg.Go(func() {
			for ai := range found {
				mu.Lock()
				dup := seen[ai.ID]
				seen[ai.ID] = true
				mu.Unlock()
				if dup {
					continue
				}
				select {
				case out <- ai:
				case <-ctx.Done():
					// Keep draining so the DHT's search goroutine can
					// finish; it stops on the same ctx.
				}
			}
		})
	}
	go func() {
		wg.Wait()
		close(out)
	}()
	return out, nil
}

// advertiseLoop keeps the rendezvous provider records fresh: right after the
// node first has peers, every AdvertiseInterval, and when the UTC day or
// the newest read key (and with it the rendezvous) changes. Failures retry
// at the next check.
func (s *Store) advertiseLoop() {
	t := time.NewTicker(s.opts.CheckInterval)
	defer t.Stop()
	var next time.Time
	var day string
	var epoch uint64
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		today := s.opts.Now().UTC().Format(time.DateOnly)
		current := s.rendezvousEpoch()
		if today == day && current == epoch && time.Now().Before(next) {
			continue
		}
		if s.dht.RoutingTable().Size() == 0 || s.rendezvousDays() == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(s.ctx, s.opts.AdvertiseInterval)
		err := s.Advertise(ctx)
		cancel()
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.log.Warn("rendezvous advertise failed", "err", err)
			continue
		}
		day, epoch, next = today, current, time.Now().Add(s.opts.AdvertiseInterval)
	}
}
