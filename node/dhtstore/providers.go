package dhtstore

import (
	"context"
	"encoding/base32"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"time"

	ds "github.com/ipfs/go-datastore"
	dsq "github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p-kad-dht/records"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Provider records are what the rendezvous is made of: a node advertises
// two keys a day (today's and yesterday's, of its newest read key), and
// kad-dht keeps each for 48 h. A server cannot tell a rendezvous key from a
// made-up one (it may not hold the key a record is under: it may lag a
// rotation), so it bounds them by who sends them instead.
const (
	// providersPerPeer is what one honest peer holds on a server at most:
	// over 48 h it advertises four days' keys, twice that across a
	// rotation.
	providersPerPeer = 8
	// providersTotal bounds every peer's records together (a few MB on
	// disk at most).
	providersTotal = 1 << 14
)

// ErrProviderQuota means the store refused a provider record: its peer or
// the whole store holds as many as it may.
var ErrProviderQuota = errors.New("dhtstore: provider record refused by the storage policy")

type providerLimits struct{ perPeer, total int }

// providerStore is the datastore kad-dht's provider manager writes to (it
// takes no store of our own): every provider record passes through Put,
// and every expired one through Delete.
type providerStore struct {
	ds.Batching
	log *slog.Logger

	mu      sync.Mutex
	lim     providerLimits
	held    map[string]peer.ID // datastore key → provider
	perPeer map[peer.ID]int
	refused int64
	logged  time.Time
}

func newProviderStore(d ds.Batching, log *slog.Logger) *providerStore {
	return &providerStore{
		Batching: d,
		log:      log,
		lim:      providerLimits{perPeer: providersPerPeer, total: providersTotal},
		held:     map[string]peer.ID{},
		perPeer:  map[peer.ID]int{},
	}
}

// providerOf is the provider a provider-record key names.
func providerOf(k ds.Key) (peer.ID, bool) {
	s := k.String()
	if !strings.HasPrefix(s, records.ProvidersKeyPrefix) {
		return "", false
	}
	i := strings.LastIndexByte(s, '/')
	// kad-dht writes the peer ID in unpadded upper-case base32
	// (multiformats' RawStdEncoding), which the standard decoder reads.
	b, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s[i+1:])
	if err != nil {
		return "", false
	}
	return peer.ID(b), true
}

// load counts what the store already holds, records written before these
// bounds included: they count until they expire.
func (p *providerStore) load(ctx context.Context) error {
	res, err := p.Batching.Query(ctx, dsq.Query{Prefix: records.ProvidersKeyPrefix, KeysOnly: true})
	if err != nil {
		return err
	}
	defer res.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for e := range res.Next() {
		if e.Error != nil {
			return e.Error
		}
		if id, ok := providerOf(ds.RawKey(e.Key)); ok {
			if _, dup := p.held[e.Key]; !dup {
				p.held[e.Key] = id
				p.perPeer[id]++
			}
		}
	}
	return nil
}

func (p *providerStore) Put(ctx context.Context, k ds.Key, v []byte) error {
	id, ok := providerOf(k)
	if !ok {
		return p.Batching.Put(ctx, k, v)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, renew := p.held[k.String()]; !renew {
		if p.perPeer[id] >= p.lim.perPeer || len(p.held) >= p.lim.total {
			p.refused++
			if now := time.Now(); now.Sub(p.logged) >= time.Minute {
				p.logged = now
				p.log.Warn("DHT provider record refused: the peer or the store holds as many as it may",
					"peer", id, "peer_holds", p.perPeer[id], "held", len(p.held), "refused", p.refused)
			}
			return ErrProviderQuota
		}
	}
	// Written under the lock, so that the count and the disk agree.
	if err := p.Batching.Put(ctx, k, v); err != nil {
		return err
	}
	if _, renew := p.held[k.String()]; !renew {
		p.held[k.String()] = id
		p.perPeer[id]++
	}
	return nil
}

func (p *providerStore) Delete(ctx context.Context, k ds.Key) error {
	if err := p.Batching.Delete(ctx, k); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if id, ok := p.held[k.String()]; ok {
		delete(p.held, k.String())
		if p.perPeer[id]--; p.perPeer[id] <= 0 {
			delete(p.perPeer, id)
		}
	}
	return nil
}

// Batch goes through Put and Delete above, so that nothing bypasses the
// bounds.
func (p *providerStore) Batch(context.Context) (ds.Batch, error) {
	return ds.NewBasicBatch(p), nil
}

// usage is how many provider records the store holds and how many it
// refused since start.
func (p *providerStore) usage() (held int, refused int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.held), p.refused
}
