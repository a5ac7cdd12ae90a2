package daemon

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node"
)

// What a steward's daemon does about read keys on its own.
//
// It rotates after a revocation only when the revoked key could read the
// current epoch: it had a package in it, or it was admitted (and so got
// the key from an invite) while the epoch was current (rotationWatch.
// couldRead says how that is told). A self-revocation
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
	rw := loadRotationWatch(d.home.path("rotation-watch.cbor"), d.log)
	var (
		due      time.Time // when the pending rotation is to be made; zero if none
		failures int
		timer    = time.NewTimer(time.Hour)
	)
	timer.Stop()
	defer timer.Stop()
	approved := map[directory.Hash]bool{}
	answered := map[directory.Hash]bool{} // lone epochs answered with a rival
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
		d.answerLoneRival(n, answered)
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

// answerLoneRival makes a rival rotation of the current number when
// rivalNeeded says this steward is to, once per lone epoch; a failure is
// logged and tried again at the next nudge.
func (d *Daemon) answerLoneRival(n *node.Node, answered map[directory.Hash]bool) {
	p := rivalNeeded(n.State(), d.me().Public())
	if p == nil || answered[p.ID] {
		return
	}
	e := p.Body.(*directory.Epoch)
	ctx, cancel := context.WithTimeout(d.ctx, time.Minute)
	_, err := n.RotateRival(ctx, e.After)
	cancel()
	if err != nil {
		d.log.Error("answering a lone rotation that leaves stewards out failed; will try again", "epoch", e.Number, "proposal", p.ID.Short(), "err", err)
		return
	}
	answered[p.ID] = true
	d.log.Warn("the current epoch was sealed by one steward and leaves other stewards out; made a rival rotation for co-stewards to approve", "epoch", e.Number, "proposal", p.ID.Short(), "signer", directory.Fingerprint(p.Approvers[0]))
}

// rivalNeeded returns the current epoch if me is to answer it with a
// rival rotation of the same number, or nil. That is when one steward
// alone made it (below its charter's threshold), it leaves out an
// unrevoked steward of the current charter (an honest rotation seals to
// every recipient: this is one compromised steward cutting the others
// out), no rival of its number already seals to every unrevoked steward,
// and me is the lowest-keyed unrevoked steward that did not sign it.
// Co-stewards approve the honest rival (rotationsToApprove) and it
// outweighs the lone one. Without this, a compromised steward that
// published its lone rotation within the window after a revocation, before
// the honest one was made, held the epoch: the honest node saw the
// revoked key left out already and did nothing (found in review, session
// 40).
func rivalNeeded(st *directory.State, me directory.PublicKey) *directory.Proposal {
	c := st.Charter()
	eps := st.Epochs()
	if c == nil || len(eps) < 2 {
		return nil
	}
	cur := eps[len(eps)-1]
	var lone *directory.Proposal
	var rivals []*directory.Epoch
	for _, p := range st.Proposals() {
		e, ok := p.Body.(*directory.Epoch)
		if !ok || e.Number != cur.Number {
			continue
		}
		if p.Effective {
			lone = &p
		} else {
			rivals = append(rivals, e)
		}
	}
	if lone == nil || countedStewards(st, c, lone.Approvers) >= int(c.Threshold) || slices.Contains(lone.Approvers, me) {
		return nil
	}
	var unrevoked []directory.PublicKey
	for _, k := range c.StewardKeys() {
		if !st.IsRevoked(k) {
			unrevoked = append(unrevoked, k)
		}
	}
	sealsToAll := func(e *directory.Epoch) bool {
		return !slices.ContainsFunc(unrevoked, func(k directory.PublicKey) bool { return !st.HasPackage(e, k) })
	}
	if sealsToAll(cur) || slices.ContainsFunc(rivals, sealsToAll) {
		return nil
	}
	var answerer *directory.PublicKey
	for i, k := range unrevoked {
		if !slices.Contains(lone.Approvers, k) && (answerer == nil || bytes.Compare(k[:], answerer[:]) < 0) {
			answerer = &unrevoked[i]
		}
	}
	if answerer == nil || *answerer != me {
		return nil
	}
	return lone
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
	// path is where readers is kept across restarts (rotation-watch.cbor
	// in the home): a revoked reader's grant used to leave the store with
	// its revocation, and still goes with its voucher's, so a daemon
	// restarted before the rotation would find no trace that the key
	// could read (found in review: the revoked device kept the read key
	// for good). Empty in tests of the rule alone.
	path string
	log  *slog.Logger
}

// watchFile is rotationWatch as it is kept on disk.
type watchFile struct {
	Epoch   uint64                `cbor:"1,keyasint"`
	Readers []directory.PublicKey `cbor:"2,keyasint"`
}

// loadRotationWatch reads what an earlier run saw. A file that cannot be
// read is reported and started afresh: the records still call for the
// rotations stewards and vouchers asked for (couldRead).
func loadRotationWatch(path string, log *slog.Logger) *rotationWatch {
	rw := &rotationWatch{readers: map[directory.PublicKey]bool{}, path: path, log: log}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return rw
	}
	var f watchFile
	if err == nil {
		err = codeDec.Unmarshal(data, &f)
	}
	if err != nil {
		log.Warn("the keys seen able to read the current epoch could not be read back; a reader's revocation of its own key may not rotate the read key", "file", path, "err", err)
		return rw
	}
	rw.epoch = f.Epoch
	for _, k := range f.Readers {
		rw.readers[k] = true
	}
	return rw
}

func (rw *rotationWatch) observe(st *directory.State) {
	changed := false
	if cur := st.CurrentEpoch(); cur != rw.epoch {
		rw.epoch = cur
		clear(rw.readers)
		changed = true
	}
	for _, rc := range st.Recipients() {
		if !rw.readers[rc.Key] {
			rw.readers[rc.Key] = true
			changed = true
		}
	}
	if changed && rw.path != "" {
		f := watchFile{Epoch: rw.epoch, Readers: slices.SortedFunc(maps.Keys(rw.readers), func(a, b directory.PublicKey) int { return bytes.Compare(a[:], b[:]) })}
		data, err := codeEnc.Marshal(f)
		if err == nil {
			err = directory.WriteFileAtomic(rw.path, data, 0o600)
		}
		if err != nil {
			rw.log.Warn("could not keep the keys seen able to read the current epoch; after a restart a reader's revocation of its own key may not rotate the read key", "file", rw.path, "err", err)
		}
	}
}

// couldRead returns the revoked keys that could read cur without a package
// in it: those seen as recipients while cur was current (kept across
// restarts), and those whose revocation the records alone show calls for
// a rotation. What one daemon saw is not enough for the revocations that
// matter most: a steward whose node was off while a reader was admitted
// and revoked never saw it. So a key is counted whose effective revocation
// someone else signed (co-stewards revoking a seized device, a member its
// reader's), was issued no earlier than cur, and no epoch of the chain
// names yet: it may have been admitted after cur was sealed and got cur's
// key by an invite. A key revoked before cur was sealed got no package in
// it and has no such revocation; each revocation calls for one rotation
// at most, which names it or is issued after it. A key's revocation of
// itself is not counted so: any key that published a pending entry can
// make one, and a rotation for each would let a stranger make every node
// store an epoch record per revocation.
func (rw *rotationWatch) couldRead(st *directory.State, cur *directory.Epoch) map[directory.PublicKey]bool {
	out := maps.Clone(rw.readers)
	named := map[directory.Hash]bool{}
	for _, e := range st.Epochs() {
		named[e.After] = true
	}
	for _, p := range st.Proposals() {
		rv, ok := p.Body.(*directory.Revocation)
		if !ok || !p.Effective || named[p.ID] || rv.Issued < cur.Issued {
			continue
		}
		if slices.ContainsFunc(p.Approvers, func(k directory.PublicKey) bool { return k != rv.Key }) {
			out[rv.Key] = true
		}
	}
	return out
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
	couldRead := rw.couldRead(st, cur)
	var keys []directory.PublicKey
	for _, k := range st.Revoked() {
		if st.HasPackage(cur, k) || couldRead[k] {
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

// approveRotations approves, once each, the epochs of co-stewards that
// this steward can check (rotationsToApprove).
func (d *Daemon) approveRotations(n *node.Node, rw *rotationWatch, approved map[directory.Hash]bool) {
	st := n.State()
	me := d.me()
	for _, p := range rotationsToApprove(st, rw, me, approved, d.log) {
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
		d.log.Info("approved a co-steward's rotation after a revocation", "proposal", p.ID.Short(), "epoch", p.Body.(*directory.Epoch).Number)
	}
}

// rotationsToApprove returns the epochs, not yet approved by me nor in
// approved, that me approves on its own: those checkRotation passes, of
// the next number after the current epoch or, short of the threshold, of
// the current number itself. The latter is what keeps one steward from
// replacing an honest automatic rotation: a lone rotation takes effect at
// once, and a rival signed alone by a compromised steward wins a tie of
// weight by a ground proposal ID (directory's epoch fork rule), so
// co-stewards approve the rotation that seals to everyone, effective or
// not, and it outweighs the rival (found in review, session 40). Against
// the epoch before the current one, only a package in it shows that the
// revoked key could read it: what this node saw then is gone.
func rotationsToApprove(st *directory.State, rw *rotationWatch, me *directory.Identity, approved map[directory.Hash]bool, log *slog.Logger) []directory.Proposal {
	c := st.Charter()
	eps := st.Epochs()
	if c == nil || len(eps) == 0 {
		return nil
	}
	cur := eps[len(eps)-1]
	var out []directory.Proposal
	for _, p := range st.Proposals() {
		e, ok := p.Body.(*directory.Epoch)
		if !ok || approved[p.ID] || slices.Contains(p.Approvers, me.Public()) {
			continue
		}
		var err error
		switch {
		case e.Number == cur.Number+1 && !p.Effective:
			err = checkRotation(st, c, cur, e, me, rw.couldRead(st, cur))
		case e.Number == cur.Number && len(eps) > 1 && countedStewards(st, c, p.Approvers) < int(c.Threshold):
			err = checkRotation(st, c, eps[len(eps)-2], e, me, nil)
		default:
			continue
		}
		if err != nil {
			log.Debug("not approving an epoch on its own", "proposal", p.ID.Short(), "why", err)
			continue
		}
		out = append(out, p)
	}
	return out
}

// countedStewards counts the unrevoked stewards of c among keys.
func countedStewards(st *directory.State, c *directory.Charter, keys []directory.PublicKey) int {
	n := 0
	for _, k := range keys {
		if slices.Contains(c.StewardKeys(), k) && !st.IsRevoked(k) {
			n++
		}
	}
	return n
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
