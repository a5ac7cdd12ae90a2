package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node"
)

// What a steward's daemon does about read keys on its own.
//
// It rotates after a revocation only when the revoked key could read the
// current epoch: it had a package in it, or it was admitted (and so got
// the key from an invite) while the epoch was current. A self-revocation
// of a throwaway key is a valid record anyone can make, and answering each
// with a rotation let one reader make every node store an epoch record per
// revocation. Revocations that arrive close together get one rotation:
// the first starts a window of rotationWindow, and what arrives in it is
// covered by the same new epoch, whose packages leave out every key
// revoked by then.
const (
	rotationWindow = 2 * time.Second
	// A rotation that fails (a store error, a record too large, a node
	// shutting down) is retried with a doubling delay up to this.
	rotationRetryMax = time.Minute
)

// watch runs the steward's automatic work for a node: it turns the node's
// events into nudges for keyWorker, which does the work off this loop, so
// a slow rotation (sealing a key to thousands of recipients) never holds
// up the events.
func (d *Daemon) watch(n *node.Node) {
	events, cancel := n.Subscribe()
	defer cancel()
	kick := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.keyWorker(n, kick)
	}()
	defer func() { <-done }()
	nudge := func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	nudge()
	for {
		select {
		case <-d.ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			switch {
			case ev.Kind == node.EventLagged:
				nudge()
			case ev.Kind != node.EventRecord || ev.Type == directory.TypeEntry:
			case ev.Changed || ev.Type == directory.TypeEpoch || ev.Type == directory.TypeApproval || ev.Type == directory.TypeEpochPage:
				nudge()
			}
		}
	}
}

// keyWorker keeps track of who could read the current epoch, rotates when
// a revocation calls for it (once per window, retrying until it lands) and
// approves co-stewards' rotations it can check.
func (d *Daemon) keyWorker(n *node.Node, kick <-chan struct{}) {
	rw := &rotationWatch{readers: map[directory.PublicKey]bool{}}
	var (
		due      time.Time // when the pending rotation is to be made; zero if none
		failures int
		timer    = time.NewTimer(time.Hour)
	)
	timer.Stop()
	defer timer.Stop()
	approved := map[directory.Hash]bool{}
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-kick:
		case <-timer.C:
		}
		st := n.State()
		if !d.isSteward(st) {
			continue
		}
		rw.observe(st)
		d.approveFirstEpoch(n)
		d.approveRotations(n, rw, approved)
		plan := rw.plan(st, d.me().Public())
		now := time.Now()
		switch {
		case plan == nil:
			due, failures = time.Time{}, 0
			continue
		case due.IsZero():
			// The window opens with the first revocation that calls for
			// a rotation and does not move: a steady trickle cannot put
			// the rotation off.
			due = now.Add(rotationWindow)
		}
		if now.Before(due) {
			timer.Reset(time.Until(due))
			continue
		}
		if !plan.mine || rw.proposed(st, d.me().Public()) {
			// Another steward rotates, or our proposal waits for its
			// approvals; look again when something changes, and now and
			// then in case it never does.
			timer.Reset(rotationRetryMax)
			continue
		}
		ctx, cancel := context.WithTimeout(d.ctx, time.Minute)
		err := d.autoRotate(ctx, n, plan.after)
		cancel()
		if err != nil {
			failures++
			delay := min(time.Second<<min(failures-1, 6), rotationRetryMax)
			due = time.Now().Add(delay)
			timer.Reset(delay)
			// Logged at the first failure and then at exponentially
			// spaced ones, so a lasting fault does not flood the log.
			if failures&(failures-1) == 0 {
				d.log.Error("automatic rotation after revocation failed; retrying", "revocation", plan.after.Short(), "attempt", failures, "next_in", delay, "err", err)
			}
			continue
		}
		failures = 0
		due = time.Time{}
		d.log.Info("read key rotated after revocation", "revocation", plan.after.Short(), "revoked", len(plan.keys))
	}
}

func (d *Daemon) autoRotate(ctx context.Context, n *node.Node, after directory.Hash) error {
	d.mu.Lock()
	f := d.rotateAuto
	d.mu.Unlock()
	if f != nil {
		return f(ctx, n, after)
	}
	_, err := d.rotate(ctx, n, after)
	return err
}

// rotationWatch remembers which keys could read the current epoch.
type rotationWatch struct {
	epoch uint64
	// readers are the keys seen as recipients (stewards, members, readers)
	// while epoch was current: those admitted after it began hold its key
	// from their invite though they have no package in it.
	readers map[directory.PublicKey]bool
}

func (rw *rotationWatch) observe(st *directory.State) {
	if cur := st.CurrentEpoch(); cur != rw.epoch {
		rw.epoch = cur
		clear(rw.readers)
	}
	for _, rc := range st.Recipients() {
		rw.readers[rc.Key] = true
	}
}

// rotationPlan is a rotation the state calls for.
type rotationPlan struct {
	keys  []directory.PublicKey // revoked keys that could read the current epoch
	after directory.Hash        // the revocation the new epoch names
	mine  bool                  // this steward is the one to make it
}

// plan says whether a rotation is due: some revoked key could read the
// current epoch. The rotating steward is, for the revocation the epoch
// names, the lowest-keyed unrevoked steward among its approvers, or among
// all stewards for a key's revocation of itself. A revocation by stewards
// of a key that had a package is preferred as the one named: after it,
// one steward's signature makes the epoch effective; after any other, the
// epoch is a proposal that co-stewards approve (approveRotations).
func (rw *rotationWatch) plan(st *directory.State, me directory.PublicKey) *rotationPlan {
	eps := st.Epochs()
	c := st.Charter()
	if len(eps) == 0 || c == nil {
		return nil
	}
	cur := eps[len(eps)-1]
	var keys []directory.PublicKey
	for _, k := range st.Revoked() {
		if st.HasPackage(cur, k) || rw.readers[k] {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil
	}
	plan := &rotationPlan{keys: keys}
	var best *directory.Proposal
	bestRank := -1
	for _, p := range st.Proposals() {
		rv, ok := p.Body.(*directory.Revocation)
		if !ok || !p.Effective || !slices.Contains(keys, rv.Key) {
			continue
		}
		rank := 0
		if rv.Charter != 0 && !slices.Contains(p.Approvers, rv.Key) {
			rank += 2 // by stewards
		}
		if st.HasPackage(cur, rv.Key) {
			rank++
		}
		if rank > bestRank || rank == bestRank && bytes.Compare(p.ID[:], best.ID[:]) < 0 {
			best, bestRank = &p, rank
		}
	}
	if best == nil {
		return nil
	}
	plan.after = best.ID
	var stewards []directory.PublicKey
	for _, k := range best.Approvers {
		if slices.Contains(c.StewardKeys(), k) && !st.IsRevoked(k) {
			stewards = append(stewards, k)
		}
	}
	if len(stewards) == 0 {
		for _, k := range c.StewardKeys() {
			if !st.IsRevoked(k) {
				stewards = append(stewards, k)
			}
		}
	}
	slices.SortFunc(stewards, func(a, b directory.PublicKey) int { return bytes.Compare(a[:], b[:]) })
	plan.mine = len(stewards) > 0 && stewards[0] == me
	return plan
}

// proposed reports whether a pending epoch of the next number, signed by
// me, with every page held and leaving out every revoked key, is already
// in the pool: it waits for co-stewards' approvals, and a second one would
// only compete with it. One whose pages this node failed to publish all of
// can never take effect, so the rotation is made again.
func (rw *rotationWatch) proposed(st *directory.State, me directory.PublicKey) bool {
	next := st.CurrentEpoch() + 1
	revoked := st.Revoked()
	for _, p := range st.Proposals() {
		e, ok := p.Body.(*directory.Epoch)
		if !ok || p.Effective || e.Number != next || !slices.Contains(p.Approvers, me) {
			continue
		}
		if len(st.EpochPages(e)) != len(e.PageHashes) {
			continue
		}
		if !slices.ContainsFunc(revoked, func(k directory.PublicKey) bool { return st.HasPackage(e, k) }) {
			return true
		}
	}
	return false
}

// approveRotations approves, once each, the pending epochs of co-stewards
// that this steward can check: the epoch follows the current one under
// the current charter, names an effective revocation of a key that could
// read the current epoch (it had a package in it, or this steward saw it
// admitted while it was current), seals nothing to a revoked key, has a
// package for every steward and member, and this steward's package in it
// opens. That is a rotation the revocation called for; a lone steward
// proposing anything else still needs the others' deliberate approval.
func (d *Daemon) approveRotations(n *node.Node, rw *rotationWatch, approved map[directory.Hash]bool) {
	st := n.State()
	me := d.me()
	c := st.Charter()
	eps := st.Epochs()
	if c == nil || len(eps) == 0 {
		return
	}
	cur := eps[len(eps)-1]
	for _, p := range st.Proposals() {
		e, ok := p.Body.(*directory.Epoch)
		if !ok || p.Effective || approved[p.ID] || slices.Contains(p.Approvers, me.Public()) {
			continue
		}
		if err := checkRotation(st, c, cur, e, me, rw.readers); err != nil {
			d.log.Debug("not approving an epoch on its own", "proposal", p.ID.Short(), "why", err)
			continue
		}
		r, err := directory.NewApproval(&directory.Record{Version: directory.FormatVersion, Type: p.Type, Network: st.Network(), Body: p.Raw}, me)
		if err == nil {
			ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
			_, err = n.Publish(ctx, r)
			cancel()
		}
		if err != nil && !errors.Is(err, directory.ErrDuplicate) {
			d.log.Warn("approving a co-steward's rotation failed; will try again", "proposal", p.ID.Short(), "err", err)
			continue
		}
		approved[p.ID] = true
		d.log.Info("approved a co-steward's rotation after a revocation", "proposal", p.ID.Short(), "epoch", e.Number)
	}
}

// checkRotation says why e is not a rotation this steward approves on its
// own, or nil if it is.
func checkRotation(st *directory.State, c *directory.Charter, cur, e *directory.Epoch, me *directory.Identity, couldRead map[directory.PublicKey]bool) error {
	if e.Number != cur.Number+1 || cur.Number == ^uint64(0) {
		return errors.New("it does not follow the current epoch")
	}
	if e.Charter != c.Version {
		return errors.New("it cites another charter than the current one")
	}
	rev, ok := st.Proposal(e.After)
	if !ok || !rev.Effective {
		return errors.New("it names no effective revocation")
	}
	rv, ok := rev.Body.(*directory.Revocation)
	if !ok || !st.HasPackage(cur, rv.Key) && !couldRead[rv.Key] {
		return errors.New("the revocation it names is not of a key that could read the current epoch")
	}
	if held := len(st.EpochPages(e)); held != len(e.PageHashes) {
		return fmt.Errorf("%d of its %d pages have arrived", held, len(e.PageHashes))
	}
	for _, k := range st.Revoked() {
		if st.HasPackage(e, k) {
			return errors.New("it seals the new key to a revoked key")
		}
	}
	want := slices.Clone(c.StewardKeys())
	for _, m := range st.Members() {
		want = append(want, m.Key)
	}
	for _, k := range want {
		if !st.IsRevoked(k) && !st.HasPackage(e, k) {
			return errors.New("it leaves out a steward or member")
		}
	}
	if _, err := directory.OpenKeyPackage(me, st.Network(), e, st.EpochPages(e)); err != nil {
		return err
	}
	return nil
}
