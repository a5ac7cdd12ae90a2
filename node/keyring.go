package node

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/ceiba-network/ceiba/directory"
)

// ErrOldSeal refuses a record that arrives sealed under a read key the
// network has rotated away from, signed by no key the state admits now.
// After a rotation the old key is what a revoked device still holds; what
// it seals under that key is accepted only from signers the network still
// trusts, so it cannot fill every node with records of throwaway keys.
var ErrOldSeal = errors.New("node: sealed under a superseded read key by a signer that is not admitted")

// maxEpochNumber mirrors the directory's bound on epoch numbers
// (directory/bodies.go): no epoch record can carry a higher one, so a key
// numbered above it can only be a forgery or a leftover of the time the
// state let one steward number an epoch 2^64-1.
const maxEpochNumber = 1 << 40

// maxPackageCache bounds the remembered results of opening this node's
// package in epoch records; the pool holds few epochs, but nothing should
// grow without bound on a peer's say.
const maxPackageCache = 4096

type packageResult struct {
	key directory.ReadKey
	err error
}

// openPackage opens this node's package in e, remembering the result by
// the epoch's fingerprint for this node (fp): HPKE with ML-KEM is too slow
// to redo for every epoch record at every governance change.
func (n *Node) openPackage(e *directory.Epoch, fp directory.Hash) (directory.ReadKey, error) {
	n.mu.Lock()
	res, ok := n.pkgCache[fp]
	n.mu.Unlock()
	if ok {
		return res.key, res.err
	}
	key, err := directory.OpenKeyPackage(n.id, n.cfg.Network, e, n.state.EpochPages(e))
	n.mu.Lock()
	if len(n.pkgCache) >= maxPackageCache {
		clear(n.pkgCache)
	}
	n.pkgCache[fp] = packageResult{key: key, err: err}
	n.mu.Unlock()
	return key, err
}

// pruneKeys drops the read keys the state shows not to be the network's:
// a key numbered beyond any epoch, a key other than the one the effective
// epoch of its number commits to, a key this node took from an epoch
// record that is no longer the effective one of its number, or one that
// its package in such a record (still in the pool, as after a restart)
// opens to, when no epoch of that number is effective. Such a key may be
// known to whoever made that record, so nothing may be sealed under it.
// The keys of effective epochs, epoch 1's while epoch 1 is not effective,
// and keys the state says nothing against (an invitee's keys of epochs
// whose records it has not received yet) stay. It reports
// whether it dropped any; the caller publishes and saves the keyring.
//
// It runs only once the store is loaded: while the state is being rebuilt
// or a sync batch is half applied, an epoch that is not effective yet may
// only be waiting for its predecessor.
func (n *Node) pruneKeys() bool {
	effective := map[uint64]*directory.Epoch{}
	for _, e := range n.state.Epochs() {
		effective[e.Number] = e
	}
	n.mu.Lock()
	held := maps.Clone(n.keyring)
	adopted := maps.Clone(n.adopted)
	n.mu.Unlock()

	drop := map[uint64]bool{}
	suspect := map[uint64]bool{}
	for num, key := range held {
		e := effective[num]
		if num > maxEpochNumber {
			drop[num] = true
			continue
		}
		if e != nil && !directory.VerifyEpochKey(n.cfg.Network, e, key) {
			// Not the key the effective epoch commits to, whatever
			// handed it to us.
			drop[num] = true
			continue
		}
		if num == 1 && e == nil {
			continue
		}
		if fp, ok := adopted[num]; ok {
			// A key is adopted only from a settled epoch, whose
			// fingerprint is its identity.
			if e == nil || epochIdentity(e) != fp {
				// Taken from a record that is not (or no longer) the
				// effective epoch of its number; adoptKeys has already
				// replaced it where the effective one has a package for us.
				drop[num] = true
				continue
			}
		}
		if e == nil {
			suspect[num] = true
		}
	}
	if len(suspect) > 0 {
		for _, p := range n.state.Proposals() {
			e, ok := p.Body.(*directory.Epoch)
			if !ok || p.Effective || !suspect[e.Number] {
				continue
			}
			if k, err := n.openPackage(e, n.epochFingerprint(e)); err == nil && k == held[e.Number] {
				drop[e.Number] = true
			}
		}
	}
	if len(drop) == 0 {
		return false
	}
	n.mu.Lock()
	for num := range drop {
		if n.keyring[num] == held[num] {
			delete(n.keyring, num)
			delete(n.adopted, num)
			delete(n.epochSeen, num)
		}
	}
	n.mu.Unlock()
	n.log.Warn("dropped read keys of epochs the network does not accept", "epochs", slices.Sorted(maps.Keys(drop)))
	return true
}

// resealUnheld stores anew, under the key sealFor picks now, every stored
// record sealed under a key the node no longer holds: else it would not
// open at the next start, nor be offered to any peer.
func (n *Node) resealUnheld() {
	kr := n.keyringSnapshot()
	n.mu.Lock()
	var hs []directory.Hash
	for h, e := range n.stored {
		if _, ok := kr[e]; !ok {
			hs = append(hs, h)
		}
	}
	n.mu.Unlock()
	if len(hs) == 0 {
		return
	}
	var batch []pending
	for _, h := range hs {
		r, ok := n.state.Record(h)
		if !ok {
			continue
		}
		e, sealed := n.sealFor(r)
		batch = append(batch, pending{r: r, hash: h, epoch: e, sealed: sealed})
	}
	if err := n.persist(batch); err != nil {
		n.log.Error("resealing records stored under a dropped key; will retry", "records", len(batch), "err", err)
	}
}

// checkOldSeal refuses a record from a peer that was sealed under a key
// older than the one this node seals under, unless the node holds it
// already (the state calls that a duplicate) or a key the state admits now
// signed it: an unrevoked steward of the current charter, an admitted
// member (for a reader grant, its voucher), or a reader revoking itself.
// Honest peers that have not rotated yet still reach us; a revoked device,
// which holds only old keys, gets nothing signed by throwaway keys in.
func (n *Node) checkOldSeal(r *directory.Record) error {
	e, ok := r.OpenedUnder()
	if !ok || e >= n.sealEpoch() || n.state.Has(r.Hash()) {
		return nil
	}
	if r.Type == directory.TypeEpochPage {
		// Pages travel under the previous epoch's key by design, and
		// their authority is the epoch that lists their hash, not their
		// relayer's standing (a steward revoked since may have relayed
		// them): the state takes only pages an epoch names.
		return nil
	}
	body, err := r.DecodeBody()
	if err != nil {
		return err
	}
	for _, sg := range r.Sigs {
		switch role, ok := n.admittedRole(sg.Key); {
		case !ok:
		case role != "reader":
			return nil
		default:
			// A reader signs nothing others need but its own revocation.
			if rv, isRev := body.(*directory.Revocation); isRev && rv.Key == sg.Key {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: %s sealed under epoch %d, current %d", ErrOldSeal, r.Type, e, n.sealEpoch())
}

// loadStored reads a record back from the store, opened and checked as
// when it arrived: the state keeps the pages of past rotations on disk
// only (retirePages) and reads them through this when asked for one.
func (n *Node) loadStored(h directory.Hash) (*directory.Record, error) {
	sealed, err := n.store.sealed(context.Background(), h)
	if err != nil {
		return nil, err
	}
	return directory.Open(sealed, n.cfg.Network, n.keyringSnapshot())
}

// retirePages lets the state drop from memory the pages of rotations
// older than the current epoch that are on disk (directory.State
// RetirePages): each rotation of 10,000 recipients is 12.5 MB that every
// node otherwise held for good. Run when the current epoch moves, and at
// each expiry pass for pages whose durable write was still pending.
func (n *Node) retirePages() {
	candidates := n.state.PagesToRetire()
	if len(candidates) == 0 {
		return
	}
	// Which are on disk is read first: the state's lock is held while it
	// asks, and the node's lock is taken before the state's elsewhere.
	stored := make(map[directory.Hash]bool, len(candidates))
	n.mu.Lock()
	for _, h := range candidates {
		if _, ok := n.stored[h]; ok {
			stored[h] = true
		}
	}
	n.mu.Unlock()
	if k := n.state.RetirePages(func(h directory.Hash) bool { return stored[h] }); k > 0 {
		n.log.Debug("pages of past rotations kept on disk only", "records", k)
	}
}
