package dhtstore

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ceiba-network/ceiba/directory"
)

// republishConcurrency is how many records one republish pass puts at once.
const republishConcurrency = 8

// Republish puts every record Options.Records lists, and the manifests this
// store published, under the current epoch's keys. It returns how many are
// now confirmed in the DHT. Records the DHT already holds a newer version of
// are skipped without error: their slot is in good hands. It is what the
// background loop runs; call it directly to push a rotation out at once.
func (s *Store) Republish(ctx context.Context) (int, error) {
	s.republishMu.Lock()
	defer s.republishMu.Unlock()
	epoch, rk, ok := s.opts.Keyring().Current()
	if !ok {
		return 0, fmt.Errorf("dhtstore: republish: %w", ErrNoReadKey)
	}
	var recs []*directory.Record
	if s.opts.Records != nil {
		recs = s.opts.Records()
	}
	s.mu.Lock()
	for _, pages := range s.manifests {
		recs = append(recs, pages...)
	}
	s.mu.Unlock()

	var (
		mu       sync.Mutex
		stored   int
		failed   int
		firstErr error
	)
	sem := make(chan struct{}, republishConcurrency)
	var wg sync.WaitGroup
	for _, r := range recs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			err := s.putUnder(ctx, r, epoch, rk)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				stored++
			case errors.Is(err, ErrSuperseded):
			default:
				failed++
				if firstErr == nil {
					firstErr = err
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return stored, fmt.Errorf("dhtstore: republish interrupted after %d of %d records: %w", stored, len(recs), err)
	}
	if failed > 0 {
		return stored, fmt.Errorf("dhtstore: republish: %d of %d records not stored; first: %w", failed, len(recs), firstErr)
	}
	if len(recs) > 0 {
		s.log.Info("republished", "records", stored, "of", len(recs), "epoch", epoch)
	}
	return stored, nil
}

// republishLoop re-puts everything every RepublishInterval, and as soon as
// the keyring's current epoch changes: records are found by keys blinded
// under the current read key, so after a rotation nothing is findable by
// the new keys until it is put again. The first pass runs once the node has
// peers: records may have expired from the DHT while it was offline.
func (s *Store) republishLoop() {
	t := time.NewTicker(s.opts.CheckInterval)
	defer t.Stop()
	lastEpoch, _, _ := s.opts.Keyring().Current()
	var next time.Time // zero: due now
	backoff := s.opts.CheckInterval
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		epoch, _, ok := s.opts.Keyring().Current()
		if !ok || s.dht.RoutingTable().Size() == 0 {
			continue
		}
		if epoch == lastEpoch && time.Now().Before(next) {
			continue
		}
		n, err := s.Republish(s.ctx)
		if s.ctx.Err() != nil {
			return
		}
		lastEpoch = epoch
		if err == nil {
			backoff = s.opts.CheckInterval
			next = time.Now().Add(s.opts.RepublishInterval)
			continue
		}
		// Retry failures sooner than an interval, but back off so a record
		// that can never be stored does not turn into a republish storm.
		s.log.Warn("republish incomplete", "stored", n, "retry_in", backoff, "err", err)
		next = time.Now().Add(backoff)
		backoff = min(2*backoff, s.opts.RepublishInterval)
	}
}
