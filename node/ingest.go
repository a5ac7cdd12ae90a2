package node

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/ceiba-network/ceiba/directory"
)

// verdict is what a record's fate says about the peer that sent it.
type verdict int

const (
	// accepted: new to the state and now durable.
	accepted verdict = iota
	// known: a duplicate or an outdated version; no news, no fault.
	known
	// ignored: refused for a reason an honest peer can run into (a clock
	// edge, a revocation it has not seen yet, an epoch key we lack).
	ignored
	// invalid: refused for a reason no honest peer can cause: the record
	// does not open, decode or verify. The sender is at fault.
	invalid
)

// revocationGrace is how long after this node learns of a revocation it
// still assumes that a peer forwarding the revoked key's records has not
// heard of it yet. After that, forwarding them is an offence.
const revocationGrace = 2 * time.Minute

// A record refused as dated in the future is pulled again futureRetryMargin
// after the node's clock reaches its date (less the clock skew), and no
// sooner than futureRetryMin, nor later than rejectedTTL, however near or
// far that is.
const (
	futureRetryMargin = time.Second
	futureRetryMin    = time.Second
)

// ingestSealed opens a sealed record and takes it through accept. It
// returns the sealing the node stored (to gossip on) when accepted.
func (n *Node) ingestSealed(sealed []byte, from peer.ID, via Via) (directory.Applied, verdict, []byte, error) {
	return n.ingest(sealed, from, via, nil)
}

// ingestGossip is ingestSealed for a message from one of the topics:
// entries says which. A record on the wrong topic is refused before the
// state sees it.
func (n *Node) ingestGossip(sealed []byte, from peer.ID, entries bool) (directory.Applied, verdict, []byte, error) {
	return n.ingest(sealed, from, ViaGossip, &entries)
}

func (n *Node) ingest(sealed []byte, from peer.ID, via Via, entriesTopic *bool) (directory.Applied, verdict, []byte, error) {
	var u *directory.Unverified
	s, err := directory.Unseal(sealed, n.keyringSnapshot())
	if err == nil && via == ViaGossip {
		// Before decoding: a churning member's neighbours get its
		// flood of large versions by gossip, and decoding and checking
		// each 16 KB body only to ignore it was most of what the flood
		// cost them (issue 21). A claim that does not even parse is
		// left to Decode, which says what is wrong with it.
		if c, cerr := s.Claim(); cerr == nil && (entriesTopic == nil || *entriesTopic == onEntriesTopic(c.Type)) {
			if err := n.gossipRateSpent(c); err != nil {
				n.events.publish(Event{Kind: EventRejected, Via: via, From: from, Type: c.Type, Err: err})
				// The claim is not verified, but from is answerable for
				// it all the same: a peer forwards only what it
				// validated (forwardrate.go).
				n.overForwarded(from, c.Signers[0], c.EntryID)
				return directory.Applied{}, ignored, nil, err
			}
		}
	}
	if err == nil {
		u, err = s.Decode(n.cfg.Network)
	}
	if err == nil && n.state.Has(u.Hash()) && (entriesTopic == nil || *entriesTopic == onEntriesTopic(u.Type())) {
		// Held already, and the hash covers the signatures: a copy of a
		// record this node verified, which the state would refuse as a
		// duplicate. Its signatures are not checked again (a rotation
		// page that came by sync and then by gossip cost a 64 KiB
		// verification more). One on the wrong topic goes the whole way
		// and is refused for it, as before.
		n.mu.Lock()
		n.duplicates[via]++
		n.mu.Unlock()
		return directory.Applied{}, known, nil, directory.ErrDuplicate
	}
	var r *directory.Record
	if err == nil {
		r, err = u.Verify()
	}
	if err != nil {
		v := invalid
		if errors.Is(err, directory.ErrNoKey) {
			// Sealed under an epoch we have no key for yet: honest
			// peers that rotated before us send these. Fetch the
			// epoch record (and with it our key) from the sender.
			// An honest peer is only ahead if the epoch record exists:
			// one that is shown not to be is graylisted (claimEpoch).
			v = ignored
			if tag, ok := directory.SealedTag(sealed); ok && from != "" && n.sync != nil {
				n.sync.claimEpoch(from, tag)
			}
		}
		n.events.publish(Event{Kind: EventRejected, Via: via, From: from, Err: err})
		return directory.Applied{}, v, nil, err
	}
	if entriesTopic != nil && *entriesTopic != onEntriesTopic(r.Type) {
		err := fmt.Errorf("%w: a %s record", ErrWrongTopic, r.Type)
		n.events.publish(Event{Kind: EventRejected, Via: via, From: from, Hash: r.Hash(), Type: r.Type, Err: err})
		return directory.Applied{}, invalid, nil, err
	}
	if via == ViaGossip {
		// Charged only now that the signature is checked: a forger must
		// not spend an honest author's tokens.
		if err := n.gossipRate(r); err != nil {
			// Not n.rejected: sync must still fetch this version (or a
			// newer one) from peers later.
			n.events.publish(Event{Kind: EventRejected, Via: via, From: from, Hash: r.Hash(), Type: r.Type, Err: err})
			if body, err := r.DecodeBody(); err == nil {
				if e, ok := body.(*directory.Entry); ok {
					n.overForwarded(from, r.Sigs[0].Key, e.ID)
				}
			}
			return directory.Applied{}, ignored, nil, err
		}
	}
	applied, out, err := n.acceptSealed(r, sealed, from, via)
	if err != nil {
		return applied, n.classify(r, err), nil, err
	}
	return applied, accepted, out, nil
}

// accept is the one path every opened record takes: the state applies it,
// the store makes it durable, new read keys are adopted, subscribers hear
// of it. It returns the sealing stored (or, for a record the state accepts
// without pooling, the sealing to gossip).
func (n *Node) accept(r *directory.Record, from peer.ID, via Via) (directory.Applied, []byte, error) {
	return n.acceptSealed(r, nil, from, via)
}

// acceptSealed is accept for a record opened from in: in is stored as it
// is when it is what sealFor would make (directory.SealsAs), and so also
// what validate hands on, byte for byte.
func (n *Node) acceptSealed(r *directory.Record, in []byte, from peer.ID, via Via) (directory.Applied, []byte, error) {
	defer n.startInflight()()
	if via != ViaLocal {
		if err := n.checkOldSeal(r); err != nil {
			n.rejected(r, from, via, err)
			return directory.Applied{}, nil, err
		}
	}
	equivocations := len(n.state.Equivocations())
	applied, err := n.state.Apply(r)
	if err != nil {
		if mayPass(err) && via != ViaLocal {
			n.parked.park(r, from, via)
		}
		n.rejected(r, from, via, err)
		return applied, nil, err
	}
	n.afterApply(r, applied)
	n.parkSetAside(applied, via)
	// A new epoch proposal changes no view until it takes effect, but
	// the pages parked for want of it are taken now (a rotation by one
	// steward takes effect only once they are).
	if applied.Changed && r.Type != directory.TypeEntry || r.Type == directory.TypeEpoch {
		defer n.retryParked()
	}
	epoch, sealed := n.sealReusing(r, in)
	if via != ViaLocal && len(n.state.Equivocations()) > equivocations {
		// Read now: the version r displaced leaves the store below.
		ev := n.evidenceOf(r, applied.Dropped)
		defer n.spreadEvidence(ev)
		defer n.reportEquivocation(ev)
	}
	if r.Type == directory.TypeEpoch || r.Type == directory.TypeEpochPage {
		defer n.notePage(via, r)
	}
	if via == ViaGossip {
		// Written behind: the validator lets the message on at once,
		// and the write joins others in one durable batch.
		n.writeBehind(writeBehind{
			p:       pending{r: r, hash: applied.Hash, epoch: epoch, sealed: sealed},
			dropped: applied.Dropped,
			done:    n.startInflight(),
		})
		n.events.publish(Event{Kind: EventRecord, Via: via, From: from, Hash: applied.Hash, Type: applied.Type, Changed: applied.Changed})
		return applied, sealed, nil
	}
	if err := n.persist([]pending{{r: r, hash: applied.Hash, epoch: epoch, sealed: sealed}}); err != nil {
		n.log.Error("record accepted but not stored; it is not acknowledged", "record", applied.Hash.Short(), "err", err)
		// What it superseded stays on disk until it is: those may be
		// acknowledged records.
		n.retire(applied.Dropped)
		return applied, nil, err
	}
	n.drop(applied.Dropped)
	n.mu.Lock()
	n.accepted[via]++
	n.mu.Unlock()
	n.events.publish(Event{Kind: EventRecord, Via: via, From: from, Hash: applied.Hash, Type: applied.Type, Changed: applied.Changed})
	return applied, sealed, nil
}

// acceptBatch applies many opened records (from one sync session or DHT
// fetch) in dependency-friendly order and stores them with one durable
// write. It returns how many were accepted, or the store's error, in which
// case none is acknowledged.
func (n *Node) acceptBatch(recs []*directory.Record, from peer.ID, via Via) (int, error) {
	return n.acceptBatchSealed(recs, nil, from, via)
}

// acceptBatchSealed is acceptBatch for records opened from the sealings in
// sealedIn (by record hash): as in acceptSealed, one that is what sealFor
// would make is stored as it is.
func (n *Node) acceptBatchSealed(recs []*directory.Record, sealedIn map[directory.Hash][]byte, from peer.ID, via Via) (int, error) {
	defer n.startInflight()()
	// The state does not depend on order; governance before entries only
	// saves pooling records that wait for their authority.
	slices.SortStableFunc(recs, func(a, b *directory.Record) int {
		return directory.ApplyRank(a.Type) - directory.ApplyRank(b.Type)
	})
	var (
		batch   []pending
		dropped []directory.Hash
		applied []directory.Applied
		reveal  []int // batch indices of records that showed an equivocation
	)
	equivocations := len(n.state.Equivocations())
	governed, rotation := false, false
	var incomplete []directory.MissingPages // before this batch (regossipPages)
	if via == ViaSync && slices.ContainsFunc(recs, func(r *directory.Record) bool { return r.Type == directory.TypeEpochPage }) {
		incomplete = n.state.IncompleteRotations()
	}
	for _, r := range recs {
		// Checked record by record against the state as the batch builds
		// it: a membership earlier in the batch admits the entries after.
		if err := n.checkOldSeal(r); err != nil {
			n.rejected(r, from, via, err)
			continue
		}
		a, err := n.state.Apply(r)
		if err != nil {
			if mayPass(err) {
				n.parked.park(r, from, via)
			}
			n.rejected(r, from, via, err)
			continue
		}
		governed = governed || a.Changed && r.Type != directory.TypeEntry || r.Type == directory.TypeEpoch
		rotation = rotation || r.Type == directory.TypeEpoch || r.Type == directory.TypeEpochPage
		n.afterApply(r, a)
		n.parkSetAside(a, via)
		applied = append(applied, a)
		dropped = append(dropped, a.Dropped...)
		batch = append(batch, pending{r: r, hash: a.Hash})
		if e := len(n.state.Equivocations()); e != equivocations {
			if e > equivocations {
				reveal = append(reveal, len(batch)-1)
			}
			equivocations = e
		}
	}
	// Seal after applying, so records that arrived with a new epoch's
	// record are stored under the new key.
	for i := range batch {
		b := &batch[i]
		b.epoch, b.sealed = n.sealReusing(b.r, sealedIn[b.hash])
	}
	var evidence []*directory.Record
	for _, i := range reveal {
		evidence = append(evidence, n.evidenceOf(batch[i].r, applied[i].Dropped)...)
	}
	err := n.persist(batch)
	if err != nil {
		n.retire(dropped)
		n.log.Error("records accepted but not stored", "count", len(batch), "err", err)
		return 0, err
	}
	n.drop(dropped)
	n.mu.Lock()
	n.accepted[via] += len(applied)
	n.mu.Unlock()
	for _, a := range applied {
		n.events.publish(Event{Kind: EventRecord, Via: via, From: from, Hash: a.Hash, Type: a.Type, Changed: a.Changed})
	}
	n.spreadEvidence(evidence)
	n.reportEquivocation(evidence)
	if len(incomplete) > 0 {
		n.regossipPages(batch, incomplete)
	}
	if rotation {
		n.notePage(via, recs...)
	}
	if governed {
		n.retryParked()
	}
	return len(applied), nil
}

// parkSetAside parks the records the state let go of for a reason that
// may pass (directory.Applied.SetAside): a proposal that waited for a
// charter version now linked by a fork side that does not name its
// signers, which the other side may still do. They leave the store with
// the rest of Dropped, and are applied again when governance changes, as
// records refused for such a reason are.
func (n *Node) parkSetAside(a directory.Applied, via Via) {
	for _, r := range a.SetAside {
		n.parked.park(r, "", via)
	}
}

// evidenceOf is what shows an equivocation that r revealed: r and the
// versions it pushed out of the pool, read back from the store while it
// still holds them.
func (n *Node) evidenceOf(r *directory.Record, dropped []directory.Hash) []*directory.Record {
	out := []*directory.Record{r}
	for _, h := range dropped {
		stored, err := n.store.ds.Get(context.Background(), recordKey(h))
		if err != nil {
			continue
		}
		if old, err := directory.Open(stored, n.cfg.Network, n.keyringSnapshot()); err == nil {
			out = append(out, old)
		}
	}
	return out
}

// evidenceRounds are when a node floods equivocation evidence it found,
// after finding it. The losing version is stored nowhere (it never stays
// in a pool) and sync never offers it, so after a partition the nodes that
// only ever held one version hear of the other only from this gossip. The
// connection that brought the evidence (a healed link) starts sync at
// once, but GossipSub takes that peer up a moment later: a single flood
// then misses exactly the nodes it is for. The later rounds reach them.
var evidenceRounds = []time.Duration{0, 2 * time.Second, 10 * time.Second}

// spreadEvidence floods recs to every topic peer at each of evidenceRounds,
// sealed anew each time (a fresh seal is a new GossipSub message, not a
// duplicate the seen-cache drops) under the newest key, so peers that
// hold it pass it on (they do not forward what comes under an older one).
// Peers that know it already drop it as a duplicate.
func (n *Node) spreadEvidence(recs []*directory.Record) {
	if len(recs) == 0 {
		return
	}
	n.wg.Go(func() {
		start := time.Now()
		for _, at := range evidenceRounds {
			select {
			case <-n.ctx.Done():
				return
			case <-time.After(time.Until(start.Add(at))):
			}
			for _, r := range recs {
				_, sealed := n.sealFor(r)
				n.gossip(n.ctx, directory.Hash{}, r.Type, sealed)
			}
		}
	})
}

func (n *Node) rejected(r *directory.Record, from peer.ID, via Via, err error) {
	if errors.Is(err, directory.ErrDuplicate) {
		n.mu.Lock()
		n.duplicates[via]++
		n.mu.Unlock()
		return
	}
	if via != ViaLocal && !mayPass(err) {
		// Not pulled again from peers for a while: it would be refused
		// again. A local refusal says nothing about what peers offer.
		// A refusal that may pass is not remembered here: the record is
		// parked, and sync skips it while it is (parking.has); once the
		// parked lot has let it go, sync must be free to fetch it again,
		// or a page that came before its epoch and was evicted from the
		// lot would stay missing for rejectedTTL.
		// One dated ahead of this node's clock (by its publisher's, or
		// because this clock is slow) is pulled again once the clock has
		// caught up with it, not ten minutes later.
		var re *directory.RejectError
		if errors.As(err, &re) && !re.NotBefore.IsZero() {
			n.sync.noteRejectedFor(r.Hash(), max(re.NotBefore.Sub(n.cfg.Now())+futureRetryMargin, futureRetryMin))
		} else {
			n.sync.noteRejected(r.Hash())
		}
	}
	n.events.publish(Event{Kind: EventRejected, Via: via, From: from, Hash: r.Hash(), Type: r.Type, Err: err})
}

// classify says what a refusal by the state says about the sender. Only
// failures that do not depend on what the receiver knows (decoding,
// signatures, sealing) are the sender's fault; Open checks all of those
// before the state sees the record, so a state refusal is a fault only in
// the one case an honest peer cannot plead ignorance: forwarding a key's
// records long after its revocation reached us.
func (n *Node) classify(r *directory.Record, err error) verdict {
	switch {
	case errors.Is(err, directory.ErrDuplicate), errors.Is(err, directory.ErrStale):
		return known
	case errors.Is(err, directory.ErrRevoked):
		n.mu.Lock()
		defer n.mu.Unlock()
		for _, s := range r.Sigs {
			if t, ok := n.revokedAt[s.Key]; ok && time.Since(t) > revocationGrace {
				return invalid
			}
		}
	}
	return ignored
}

// afterApply updates what the node derives from governance changes: when
// revocations became known, and which read keys it can now open.
func (n *Node) afterApply(r *directory.Record, a directory.Applied) {
	if (r.Type == directory.TypeEpoch || r.Type == directory.TypeEpochPage) && !a.Changed {
		// A pending epoch changes no view, but may be where a key this
		// node holds came from (pruneKeys).
		n.adoptKeys()
		return
	}
	if !a.Changed || r.Type == directory.TypeEntry || r.Type == directory.TypeReader {
		return
	}
	now := time.Now()
	// Only a revocation, an approval of one, or a charter link (which can
	// make waiting revocations count) revokes a key: looking at every
	// revoked key after every record would make taking in many
	// revocations, at start-up too, quadratic.
	var revoked []directory.PublicKey
	switch body, _ := r.DecodeBody(); b := body.(type) {
	case *directory.Revocation:
		revoked = []directory.PublicKey{b.Key}
	case *directory.Approval:
		if b.Of == directory.TypeRevocation {
			if inner, err := directory.DecodeRevocation(b.Proposal); err == nil {
				revoked = []directory.PublicKey{inner.Key}
			}
		}
	case *directory.Charter:
		revoked = n.state.Revoked()
	}
	n.mu.Lock()
	for _, k := range revoked {
		if _, ok := n.revokedAt[k]; !ok && n.state.IsRevoked(k) {
			n.revokedAt[k] = now
		}
	}
	n.mu.Unlock()
	if revoked != nil {
		n.noteVoided()
	}
	n.adoptKeys()
}

// noteVoided reports each revocation by stewards that newly lost its
// threshold because a revocation citing an earlier charter version revoked
// some of its signers (PROTOCOL.md §6 step 2): the key it named is not
// revoked, and only stewards approving it again can change that, so they
// must hear of it (a warning, an event the steward's page lists). A key
// that came back can be served again: what it signed, refused as revoked
// lately, may be pulled at once.
func (n *Node) noteVoided() {
	ids := n.state.VoidedRevocations()
	n.mu.Lock()
	var fresh []directory.Hash
	now := make(map[directory.Hash]bool, len(ids))
	for _, id := range ids {
		now[id] = true
		if !n.voided[id] {
			fresh = append(fresh, id)
		}
	}
	n.voided = now
	back := false
	if len(fresh) > 0 {
		// Only when a revocation was voided can a key come back, so the
		// revoked keys are looked at then, not after every record.
		for k := range n.revokedAt {
			if !n.state.IsRevoked(k) {
				delete(n.revokedAt, k)
				back = true
			}
		}
	}
	n.mu.Unlock()
	if back {
		n.sync.forgetRejected()
	}
	for _, id := range fresh {
		p, _ := n.state.Proposal(id)
		var key string
		if rv, ok := p.Body.(*directory.Revocation); ok {
			key = directory.Fingerprint(rv.Key)
		}
		uncounted := make([]string, len(p.Uncounted))
		for i, k := range p.Uncounted {
			uncounted[i] = directory.Fingerprint(k)
		}
		n.log.Warn("a revocation lost its threshold: some of its approvers were revoked at an earlier charter version, so the key it names is not revoked; stewards must approve it again",
			"proposal", id.String(), "key", key, "uncounted", uncounted)
		n.events.publish(Event{Kind: EventRevocationVoided, Time: time.Now(), Hash: id, Type: directory.TypeRevocation})
	}
}

// adoptKeys opens this node's package in every effective epoch it has not
// handled yet, adds the keys to the keyring and has them saved; once the
// store is loaded, it then drops the keys the state does not back
// (pruneKeys).
func (n *Node) adoptKeys() {
	// The sealing epoch can move without a new key (an epoch whose key
	// came with the invite becomes effective): the topics follow it.
	defer n.wakeTopics()
	// The rotation before a new epoch is past: its pages can leave memory
	// (after the start's own pass, once the state is whole).
	defer func() {
		if cur := n.state.CurrentEpoch(); n.loaded.Load() && n.retiredAt.Swap(cur) != cur {
			n.retirePages()
		}
	}()
	var added []uint64
	pagesMissing := false
	for _, e := range n.state.Epochs() {
		n.mu.Lock()
		settled := n.epochSeen[e.Number] == epochIdentity(e)
		n.mu.Unlock()
		if settled {
			continue
		}
		fp := n.epochFingerprint(e)
		n.mu.Lock()
		seen := n.epochSeen[e.Number] == fp
		n.mu.Unlock()
		if seen {
			continue
		}
		key, err := n.openPackage(e, fp)
		n.mu.Lock()
		n.epochSeen[e.Number] = fp
		switch {
		case errors.Is(err, directory.ErrPagesMissing):
			// The rotation's pages are still arriving; the fingerprint
			// counts the pages held, so the next one brings us back.
			// What gossip does not bring, the page fetcher asks peers
			// for (pagefetch.go). A node that holds the key the epoch
			// commits to (from its invite, or opened before) needs no
			// page of it.
			n.log.Debug("waiting for the pages of the current rotation", "epoch", e.Number, "err", err)
			if held, ok := n.keyring[e.Number]; ok && directory.VerifyEpochKey(n.cfg.Network, e, held) {
				break
			}
			delete(n.epochSeen, e.Number)
			pagesMissing = true
		case errors.Is(err, directory.ErrNotRecipient):
			n.log.Warn("this node's key has no package in an effective epoch; it cannot read what is sealed under it", "epoch", e.Number)
		case errors.Is(err, directory.ErrKeyMismatch):
			n.keyMismatch[e.Number] = true
			n.log.Error("the epoch's package for this node holds another key than the epoch commits to: its signers equivocated; tell the stewards", "epoch", e.Number)
		case err != nil:
			n.log.Error("key package does not open", "epoch", e.Number, "err", err)
		default:
			if old, ok := n.keyring[e.Number]; ok && old != key {
				// The state picked another epoch of this number than the
				// one we took the key from (two stewards rotated at
				// once); the state's choice is what the network uses.
				n.log.Warn("replacing the read key of an epoch the state resolved differently", "epoch", e.Number)
			}
			// Opened: settled, even if a page came in since fp was
			// taken.
			n.adopted[e.Number] = epochIdentity(e)
			n.epochSeen[e.Number] = epochIdentity(e)
			delete(n.keyMismatch, e.Number)
			if old, ok := n.keyring[e.Number]; !ok || old != key {
				n.keyring[e.Number] = key
				added = append(added, e.Number)
			}
		}
		n.mu.Unlock()
	}
	if pagesMissing {
		n.notePage(ViaLocal)
	}
	dropped := false
	if n.loaded.Load() {
		dropped = n.pruneKeys()
	}
	if len(added) == 0 && !dropped {
		return
	}
	n.mu.Lock()
	n.publishKeyring()
	n.keysUnsaved = true
	n.mu.Unlock()
	n.saveKeys()
	if dropped {
		n.resealUnheld()
	}
	for _, e := range added {
		n.log.Info("adopted read key", "epoch", e)
		n.events.publish(Event{Kind: EventKey, Epoch: e})
	}
	// Peers may hold records sealed under the new key that we could not
	// open before.
	if n.sync != nil && len(added) > 0 {
		for _, p := range n.host.Network().Peers() {
			n.sync.request(p)
		}
	}
}

// epochFingerprint identifies an epoch body as far as this node's key is
// concerned, so a different epoch of the same number is noticed. Once
// every page is held, or this node's package is among those held, what
// the epoch holds for this node is settled (its pages are fixed by their
// hashes in the body) and the fingerprint is the body's identity
// (epochIdentity); until then it also counts the pages held, so that each
// new page is a reason to look again.
func (n *Node) epochFingerprint(e *directory.Epoch) directory.Hash {
	id := epochIdentity(e)
	pages := n.state.EpochPages(e)
	if len(pages) == len(e.PageHashes) {
		return id
	}
	if _, ok := directory.FindPackage(n.cfg.Network, e, pages, n.id.Public()); ok {
		return id
	}
	h := sha256.New()
	h.Write(id[:])
	fmt.Fprintf(h, "/missing/%d", len(pages))
	var out directory.Hash
	h.Sum(out[:0])
	return out
}

// epochIdentity hashes every field of an epoch body. adoptKeys compares it
// with the fingerprint it last handled before looking at any page: looking
// up this node's package in every page of every epoch, on every batch a
// node applied, made each rotation's delivery slower than the one before
// (a 10,000-recipient rotation's CPU on 30 nodes went from 8 s to 23 s
// over six rotations, most of the growth in that lookup; issue 14).
func epochIdentity(e *directory.Epoch) directory.Hash {
	h := sha256.New()
	h.Write(e.After[:])
	fmt.Fprintf(h, "%d/%d/%d/%x/%x/%d", e.Number, e.Charter, e.Issued, e.Rotation, e.KeyCommit, len(e.PageHashes))
	for _, ph := range e.PageHashes {
		h.Write(ph[:])
	}
	var out directory.Hash
	h.Sum(out[:0])
	return out
}

// saveKeys hands the caller a snapshot of the keystore to persist.
func (n *Node) saveKeys() {
	if n.cfg.SaveKeys == nil {
		n.mu.Lock()
		n.keysUnsaved = false
		n.mu.Unlock()
		return
	}
	n.saveMu.Lock()
	defer n.saveMu.Unlock()
	n.mu.Lock()
	ks := &directory.Keystore{Identity: n.id, Keys: maps.Clone(n.keyring)}
	n.mu.Unlock()
	if err := n.cfg.SaveKeys(ks); err != nil {
		// The key stays in memory; records sealed under it are still
		// readable after a restart because the epoch record that carries
		// it is stored under the previous key. Retry anyway.
		n.log.Error("saving the keystore failed; will retry", "err", err)
		return
	}
	n.mu.Lock()
	if maps.Equal(ks.Keys, n.keyring) {
		n.keysUnsaved = false
	}
	n.mu.Unlock()
}

// sealFor picks the key a record is stored and sent under: the state's
// current epoch's (sealKey), so a revoked device that kept an old key reads
// nothing new;
// except the records that bring an epoch into effect, which go under the
// previous epoch's key so the members who are still on that key can open
// them and learn the new one: the epoch's own record and its approvals,
// the revocation it follows and that revocation's approvals, and the
// charter versions it cites. Sealed under the new key, they could be
// opened only by nodes that already hold it, and the others would never
// adopt it (a node that takes the revocation and the epoch in one sync
// batch, or the revocation after the epoch, would otherwise store it
// under the new key and never offer it to them).
func (n *Node) sealFor(r *directory.Record) (uint64, []byte) {
	epoch, key := n.sealKeyFor(r)
	return epoch, directory.Seal(r, key)
}

// sealReusing is sealFor, but returns in, the sealing r was opened from,
// when it is what sealFor would make but for the nonce (directory.SealsAs).
func (n *Node) sealReusing(r *directory.Record, in []byte) (uint64, []byte) {
	epoch, key := n.sealKeyFor(r)
	if directory.SealsAs(in, r, key) {
		return epoch, in
	}
	return epoch, directory.Seal(r, key)
}

// sealKeyFor is the epoch and key sealFor seals r under.
func (n *Node) sealKeyFor(r *directory.Record) (uint64, directory.ReadKey) {
	num, ok := epochNumber(r)
	if !ok {
		num, ok = n.enablesEpoch(r)
	}
	kr := n.keyringSnapshot()
	epoch, key, _ := directory.SealingKey(n.state.Epochs(), kr)
	if ok && num > 1 && num <= epoch {
		if k, ok := kr[num-1]; ok {
			epoch, key = num-1, k
		}
	}
	return epoch, key
}

// enablesEpoch reports the first effective epoch after the first that r
// (a revocation or charter, or an approval of one) is needed for.
func (n *Node) enablesEpoch(r *directory.Record) (uint64, bool) {
	if r.Type != directory.TypeRevocation && r.Type != directory.TypeCharter && r.Type != directory.TypeApproval {
		return 0, false
	}
	b, err := r.DecodeBody()
	if err != nil {
		return 0, false
	}
	if a, ok := b.(*directory.Approval); ok {
		if b, err = (&directory.Record{Type: a.Of, Body: a.Proposal}).DecodeBody(); err != nil {
			return 0, false
		}
	}
	var needs func(*directory.Epoch) bool
	switch b := b.(type) {
	case *directory.Revocation:
		id := r.ProposalID()
		needs = func(e *directory.Epoch) bool { return e.After == id }
	case *directory.Charter:
		needs = func(e *directory.Epoch) bool { return e.Charter >= b.Version }
	default:
		return 0, false
	}
	for _, e := range n.state.Epochs() {
		if e.Number > 1 && needs(e) { // epoch 1's key comes with the invite
			return e.Number, true
		}
	}
	return 0, false
}

// epochNumber is the number of the epoch r proposes, approves or carries
// a page of.
func epochNumber(r *directory.Record) (uint64, bool) {
	if r.Type != directory.TypeEpoch && r.Type != directory.TypeApproval && r.Type != directory.TypeEpochPage {
		return 0, false
	}
	b, err := r.DecodeBody()
	if err != nil {
		return 0, false
	}
	if pg, ok := b.(*directory.EpochPage); ok {
		return pg.Number, true
	}
	if a, ok := b.(*directory.Approval); ok {
		if a.Of != directory.TypeEpoch {
			return 0, false
		}
		if b, err = (&directory.Record{Type: a.Of, Body: a.Proposal}).DecodeBody(); err != nil {
			return 0, false
		}
	}
	e, ok := b.(*directory.Epoch)
	if !ok {
		return 0, false
	}
	return e.Number, true
}

// pending is a record on its way to the store.
type pending struct {
	r      *directory.Record
	hash   directory.Hash
	epoch  uint64
	sealed []byte
}

// persist writes records the state pools and returns once they are
// durable. Records the state does not pool (equivocation evidence, or one
// that a concurrent apply has already superseded) are not stored.
//
// The write happens outside n.mu so concurrent ingests share the disk;
// the check afterwards is what keeps the store equal to the pool: a record
// dropped by a concurrent apply while we wrote it is either still
// unindexed (we see !Has and delete it) or indexed (the dropper deletes
// it after us, under n.mu).
func (n *Node) persist(batch []pending) error {
	// Every record is written, even one the state has already let go of:
	// a version superseded between Apply and this write is still
	// acknowledged to whoever published it, and the version that
	// superseded it may not reach the disk before a crash. Such a record
	// becomes an orphan below, deleted once that is sure.
	if len(batch) == 0 {
		return nil
	}
	ctx := context.Background() // a half-cancelled durable write helps no one
	var err error
	if len(batch) == 1 {
		err = n.store.put(ctx, batch[0].hash, batch[0].sealed)
	} else {
		err = n.store.putMany(ctx, batch)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err != nil {
		for _, p := range batch {
			n.unpersisted[p.hash] = struct{}{}
		}
		return err
	}
	for _, p := range batch {
		delete(n.unpersisted, p.hash)
		if n.state.Has(p.hash) {
			n.stored[p.hash] = p.epoch
		} else {
			// Superseded while it was being written, by a record that
			// may not be on disk yet: the caller acknowledges this one,
			// so it stays until that is sure.
			n.orphans[p.hash] = struct{}{}
		}
	}
	n.storedVer++
	return nil
}

// startInflight counts a call between Apply and its durable write, and
// returns the function that ends it.
func (n *Node) startInflight() func() {
	n.mu.Lock()
	n.inflight++
	n.mu.Unlock()
	return func() {
		n.mu.Lock()
		n.inflight--
		n.mu.Unlock()
	}
}

// retire takes records the state pushed out of its pool off the books
// without deleting them yet: the record that pushed them out is not on
// disk. They become orphans, deleted once that is sure.
func (n *Node) retire(hs []directory.Hash) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, h := range hs {
		if n.state.Has(h) {
			continue // applied anew since it was dropped
		}
		delete(n.unpersisted, h)
		if _, ok := n.stored[h]; ok {
			delete(n.stored, h)
			n.storedVer++
			n.orphans[h] = struct{}{}
		}
	}
}

// removeOrphansLocked deletes the orphans once nothing that could have
// superseded them is still on its way to disk. A deletion lost in a crash
// only brings back a record the state drops again at the next start.
func (n *Node) removeOrphansLocked() {
	if len(n.orphans) == 0 || n.inflight > 0 || len(n.unpersisted) > 0 {
		return
	}
	var hs []directory.Hash
	for h := range n.orphans {
		// One applied anew since is the state's again, and stored.
		if !n.state.Has(h) {
			hs = append(hs, h)
		}
	}
	if err := n.store.remove(context.Background(), hs); err != nil {
		n.log.Warn("removing superseded records; they go at the next start", "err", err)
		return
	}
	clear(n.orphans)
}

// drop deletes records the state pushed out of its pool.
func (n *Node) drop(hs []directory.Hash) {
	if len(hs) == 0 {
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.removeLocked(hs)
}

func (n *Node) removeLocked(hs []directory.Hash) {
	var del []directory.Hash
	for _, h := range hs {
		if n.state.Has(h) {
			continue // applied anew since it was dropped
		}
		delete(n.unpersisted, h)
		if _, ok := n.stored[h]; ok {
			delete(n.stored, h)
			del = append(del, h)
		}
	}
	if len(del) == 0 {
		return
	}
	n.storedVer++
	if err := n.store.remove(context.Background(), del); err != nil {
		n.log.Warn("removing dropped records; they go at the next start", "err", err)
	}
}

// persistHeld writes the record h now if the state holds it and an
// earlier write of it failed, and reports whether it tried; sealed is what
// it wrote.
func (n *Node) persistHeld(h directory.Hash) (tried bool, sealed []byte, err error) {
	n.mu.Lock()
	_, failed := n.unpersisted[h]
	n.mu.Unlock()
	if !failed {
		return false, nil, nil
	}
	r, ok := n.state.Record(h)
	if !ok {
		return false, nil, nil
	}
	e, sealed := n.sealFor(r)
	return true, sealed, n.persist([]pending{{r: r, hash: h, epoch: e, sealed: sealed}})
}

// retryPersist writes records the store refused earlier.
func (n *Node) retryPersist() {
	n.mu.Lock()
	hs := slices.Collect(maps.Keys(n.unpersisted))
	n.mu.Unlock()
	if len(hs) == 0 || !n.enter() {
		return
	}
	defer n.leave()
	var batch []pending
	for _, h := range hs {
		r, ok := n.state.Record(h)
		if !ok {
			n.mu.Lock()
			delete(n.unpersisted, h)
			n.mu.Unlock()
			continue
		}
		e, sealed := n.sealFor(r)
		batch = append(batch, pending{r: r, hash: h, epoch: e, sealed: sealed})
	}
	if err := n.persist(batch); err != nil {
		n.log.Error("store still failing", "records", len(batch), "err", err)
	}
}
