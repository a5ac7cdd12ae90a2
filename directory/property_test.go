package directory_test

import (
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/cryptotest"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// The defaults keep `make test` (race detector, two cores) within seconds;
// run more sets by hand with
//
//	go test -run TestApplyOrderIndependent ./directory/ -args -prop.sets=500
var (
	propSets  = flag.Int("prop.sets", 0, "record sets TestApplyOrderIndependent generates (0: 30, or 10 with -short)")
	propPerms = flag.Int("prop.perms", 6, "delivery orders tried per record set")
	propSeed  = flag.Uint64("prop.seed", 1, "seed of the first record set")
)

// TestApplyOrderIndependent is the design's central promise: the directory
// is a function of the set of records, so nodes that received the same
// records in different orders, with duplicates, agree on everything a user
// or a steward can see.
func TestApplyOrderIndependent(t *testing.T) {
	sets := *propSets
	if sets == 0 {
		sets = 30
		if testing.Short() {
			sets = 10
		}
	}
	// Two dummies per rotation rather than padding to 64: the padding is
	// TestRotationPadding's business, the order of pages this one's.
	defer directory.PadForTest(func(n int) int { return n + 2 })()
	var cover coverage
	ran := 0
	for i := range sets {
		seed := *propSeed + uint64(i)
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("reproduce with: go test -run 'TestApplyOrderIndependent/seed=%d$' ./directory/ -args -prop.seed=%d", seed, seed)
				}
			})
			// Keys, salts and HPKE encapsulations come from crypto/rand;
			// pinning it makes a failing seed replay exactly.
			cryptotest.SetGlobalRandom(t, seed)
			rng := rand.New(rand.NewPCG(seed, 0xce1ba))
			g := newGen(t, rng)
			g.generate()
			checkOrders(t, g, rng, *propPerms, &cover)
			ran++
		})
	}
	t.Logf("%d record sets, %d orders each: %+v", ran, *propPerms+1, cover)
	if t.Failed() || ran < sets || *propSeed != 1 {
		return // filtered or exploratory runs cover what they cover
	}
	// A generator that stopped producing the hard cases would let the
	// property pass vacuously.
	for what, n := range map[string]int{
		"visible entries":                                       cover.visible,
		"charter amendments in force":                           cover.amended,
		"revoked keys":                                          cover.revoked,
		"revoked stewards":                                      cover.revokedStewards,
		"effective epochs":                                      cover.epochs,
		"rotations after a revocation":                          cover.rotations,
		"admitted readers":                                      cover.readers,
		"equivocations":                                         cover.equivocations,
		"charter or epoch forks":                                cover.forks,
		"tombstoned entries":                                    cover.tombstones,
		"revocations before what they void":                     cover.revocationFirst,
		"approvals before their proposal":                       cover.approvalFirst,
		"memberships left below threshold":                      cover.belowThreshold,
		"authors over a per-author limit":                       cover.heldBack,
		"shrinking updates":                                     cover.shrinks,
		"rotations of several pages":                            cover.paged,
		"pages that never arrive":                               cover.partial,
		"entries outside an amended charter's per-entry limits": cover.outside,
		voidedCase:                                              cover.voided,
		"stewards revoking each other at one version":           cover.mutual,
		"evidence of a reader key's two KEM keys":               cover.kemEvidence,
		forkEvidenceCase:                                        cover.forkEvidence,
		"heartbeats naming entries a copy lacks":                cover.behindMembers,
		forkSideCase:                                            cover.forkSide,
		"reader keys revoked by their own key":                  cover.readerSelfRevoked,
	} {
		if n == 0 && !(testing.Short() && (what == voidedCase || what == forkEvidenceCase || what == forkSideCase)) {
			// -short's 10 sets rarely amend the charter twice with the
			// compromised steward kept (stewardrevocation_test.go has it),
			// and rarely amend it at all (forkevidence_test.go,
			// forkside_test.go).
			t.Errorf("no record set exercised %s", what)
		}
	}
}

const (
	voidedCase       = "revocations that lost a revoked steward's weight"
	forkEvidenceCase = "evidence of a charter fork"
	forkSideCase     = "heartbeats held of a steward of one fork side only"
)

type coverage struct {
	visible, amended, revoked, revokedStewards, epochs, rotations, readers int
	equivocations, tombstones, revocationFirst, approvalFirst              int
	belowThreshold, forks, heldBack, shrinks                               int
	paged, partial, partialCurrent                                         int
	outside                                                                int
	voided, mutual, kemEvidence, forkEvidence, behindMembers, forkSide     int
	readerSelfRevoked                                                      int
}

// view is everything the property compares: what users and stewards see.
type view struct {
	Digest        directory.Hash
	Search        map[string][]result
	Equivocations []directory.Equivocation
	Charter       uint64
	Members       int
	Readers       int
	Revoked       []directory.PublicKey
	Epoch         uint64
	Entries       int
	Conflicts     int
	Rotation      directory.Rotation
	// Heartbeats are outside the digest, but which ones a node holds
	// must not depend on the order either.
	Heartbeats []directory.StewardHeartbeat
	Fresh      directory.Freshness
}

type result struct {
	Key   string
	Seq   uint64
	Hash  directory.Hash
	Score float64
}

var propQueries = []directory.Query{
	{},
	{Text: "asesoria"},
	{Text: "refugio temporal"},
	{Category: "legal"},
	{Category: "shelter"},
	{Language: "en"},
	{Area: "MX"},
	{Area: "Bogotá"},
}

func viewOf(s *directory.State) view {
	st := s.Stats()
	v := view{
		Digest:        s.Digest(),
		Search:        map[string][]result{},
		Equivocations: s.Equivocations(),
		Charter:       st.Charter,
		Members:       st.Members,
		Readers:       st.Readers,
		Revoked:       s.Revoked(),
		Epoch:         st.Epoch,
		Entries:       st.Entries,
		Conflicts:     st.Conflict,
		Heartbeats:    s.Heartbeats(),
		Fresh:         s.HeartbeatFreshness(),
	}
	v.Rotation, _ = s.CurrentRotation()
	for _, q := range propQueries {
		var rs []result
		for _, r := range s.Search(q) {
			l, ok := s.Lookup(r.Key)
			if !ok {
				panic("search returned a key that Lookup does not know: " + r.Key)
			}
			rs = append(rs, result{Key: r.Key, Seq: r.Entry.Seq, Hash: l.Hash, Score: r.Score})
		}
		v.Search[fmt.Sprintf("%+v", q)] = rs
	}
	return v
}

// acceptableInAnyOrder are the refusals that depend only on what arrived
// before (a reader or steward publishing, or a non-steward approving, is
// pooled until the state knows who they are): every generated record is
// well formed and signed, so any other refusal is a bug.
var acceptableInAnyOrder = []error{
	directory.ErrDuplicate, directory.ErrStale, directory.ErrRevoked,
	directory.ErrNotMember, directory.ErrNotSteward,
}

// retriedLater are refusals for a reason that passes once the node knows
// more (a self-revocation of a key it has not heard of, a proposal citing a
// charter or epoch far ahead of it): a node takes such a record at a later
// sync, so applyAll offers it again until nothing more is taken, as sync
// would.
var retriedLater = []error{directory.ErrPendingSignature, directory.ErrUnknownCharter}

// applyAll applies recs in order, offering again what was refused for a
// passing reason until nothing more is taken, as sync would. A key revoked
// by stewards can also come back, when a revocation citing an earlier
// charter version revokes enough of its revocation's signers (PROTOCOL.md
// §6 step 2); what it signed was refused or dropped meanwhile, and a node
// gets it again from peers that hold it (a node clears what it remembers
// as refused when that happens). So after a pass in which a key came back,
// every record is offered again, as a peer holding the whole set would at
// the next sync.
func applyAll(s *directory.State, recs []*directory.Record) error {
	all := recs
	wasRevoked := map[directory.PublicKey]bool{}
	for pass := 0; len(recs) > 0; pass++ {
		if pass > 2*len(all)+4 {
			return fmt.Errorf("records still taken after %d passes: the state does not settle", pass)
		}
		var again []*directory.Record
		taken, cameBack := 0, false
		for _, r := range recs {
			a, err := s.Apply(r)
			// Records the state let go of for a reason that may pass are
			// offered again, as the node's parked lot does.
			again = append(again, a.SetAside...)
			switch {
			case err == nil:
				taken++
				if r.Type == directory.TypeRevocation || r.Type == directory.TypeApproval || r.Type == directory.TypeCharter {
					now := s.Revoked()
					for k := range wasRevoked {
						if !slices.Contains(now, k) {
							cameBack = true
						}
					}
					for _, k := range now {
						wasRevoked[k] = true
					}
				}
			case slices.ContainsFunc(retriedLater, func(e error) bool { return errors.Is(err, e) }):
				again = append(again, r)
			case !slices.ContainsFunc(acceptableInAnyOrder, func(e error) bool { return errors.Is(err, e) }):
				return fmt.Errorf("apply %s %s: unexpected refusal of a valid record: %w", r.Type, r.Hash().Short(), err)
			}
		}
		if taken == 0 {
			break // nothing more can be taken
		}
		if cameBack {
			again = all
			clear(wasRevoked)
		}
		recs = again
	}
	return nil
}

func checkOrders(t *testing.T, g *gen, rng *rand.Rand, perms int, cover *coverage) {
	// A peer receives decoded records; decoding once up front keeps the
	// test about the state machine rather than about signature speed.
	recs := make([]*directory.Record, len(g.recs))
	copies := map[*directory.Record]*directory.Record{} // a second decoded copy of each, made on demand
	for i, r := range g.recs {
		recs[i] = decoded(t, r)
		g.note(recs[i])
	}
	ref := g.nw.State()
	if err := applyAll(ref, recs); err != nil { // generation order is causal order
		t.Fatal(err)
	}
	want := viewOf(ref)
	// What a node holds is all it has after a restart: rebuilt from that
	// alone, the view must be the same (found by the lead engineer: a
	// reader's revocation of its own key dropped the grant that let a
	// restarted node take it).
	rebuilt := g.nw.State()
	if err := applyAll(rebuilt, ref.Records()); err != nil {
		t.Fatalf("rebuilding from the records held: %v", err)
	}
	// Not an entry's equivocation: the pool keeps one of the two
	// versions, and what the other showed lasts only as evidence.
	got, wantHeld := viewOf(rebuilt), want
	got.Equivocations, got.Conflicts, wantHeld.Equivocations, wantHeld.Conflicts = nil, 0, nil, 0
	if !reflect.DeepEqual(got, wantHeld) {
		t.Fatalf("rebuilt from the %d records it holds, the state disagrees:\n%s", len(ref.Records()), diffViews(wantHeld, got))
	}

	orders := make([][]*directory.Record, perms)
	for p := range perms {
		order := slices.Clone(recs)
		if p == 0 {
			// Everything arrives before what it depends on: approvals
			// before proposals, revocations before their targets.
			slices.Reverse(order)
		} else {
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		}
		for range rng.IntN(len(order)/4 + 1) {
			dup := order[rng.IntN(len(order))]
			if rng.IntN(2) == 0 {
				if copies[dup] == nil {
					copies[dup] = decoded(t, dup)
					g.info[copies[dup]] = g.info[dup]
				}
				dup = copies[dup]
			}
			at := rng.IntN(len(order) + 1)
			order = slices.Insert(order, at, dup)
		}
		g.noteOrder(order, cover)
		orders[p] = order
	}
	// The orders share records but not states, so they run side by side;
	// under the race detector that also checks that applying a record
	// never writes to it.
	views, errs := make([]view, perms), make([]error, perms)
	var wg sync.WaitGroup
	slots := make(chan struct{}, runtime.GOMAXPROCS(0))
	for p, order := range orders {
		wg.Go(func() {
			slots <- struct{}{}
			defer func() { <-slots }()
			s := g.nw.State()
			if errs[p] = applyAll(s, order); errs[p] == nil {
				views[p] = viewOf(s)
			}
		})
	}
	wg.Wait()
	for p := range orders {
		if errs[p] != nil {
			t.Fatalf("order %d: %v", p, errs[p])
		}
		if !reflect.DeepEqual(views[p], want) {
			t.Fatalf("order %d (of %d records) disagrees with causal order:\n%s", p, len(orders[p]), diffViews(want, views[p]))
		}
	}

	cover.visible += want.Entries
	if want.Charter > 1 {
		cover.amended++
	}
	cover.revoked += len(want.Revoked)
	for _, k := range want.Revoked {
		if g.isSteward[k] {
			cover.revokedStewards++
		}
	}
	cover.epochs += int(want.Epoch)
	if want.Epoch > 1 {
		cover.rotations++
	}
	cover.readers += want.Readers
	cover.equivocations += len(want.Equivocations)
	for _, eq := range want.Equivocations {
		if !strings.HasPrefix(eq.Slot, "entry/") {
			cover.forks++
		}
	}
	cover.tombstones += g.tombstones
	cover.outside += g.outsidePolicy(want.Charter)
	cover.belowThreshold += g.belowThreshold
	cover.voided += len(ref.VoidedRevocations())
	cover.mutual += g.mutual
	cover.kemEvidence += g.kemEvidence
	cover.readerSelfRevoked += g.readerSelfRevoked
	cover.forkEvidence += g.forkEvidence
	for _, hb := range want.Heartbeats {
		if g.sideOnly[hb.Steward] {
			cover.forkSide++
		}
	}
	if want.Fresh.BehindMembers > 0 {
		cover.behindMembers++
	}
	cover.shrinks += g.shrinks
	cover.paged += g.paged
	cover.partial += g.partial
	if want.Rotation.Pages > 0 && !want.Rotation.Complete() {
		cover.partialCurrent++
	}
	for _, org := range g.orgs {
		if ref.Usage(org.Public()).Held > 0 {
			cover.heldBack++
		}
	}
}

func diffViews(want, got view) string {
	var out string
	w, g := reflect.ValueOf(want), reflect.ValueOf(got)
	for i := range w.NumField() {
		if !reflect.DeepEqual(w.Field(i).Interface(), g.Field(i).Interface()) {
			out += fmt.Sprintf("  %s:\n    want %+v\n    got  %+v\n", w.Type().Field(i).Name, w.Field(i).Interface(), g.Field(i).Interface())
		}
	}
	return out
}

// gen builds one random but valid record set: a network with amendments,
// members (some below threshold), readers, entries with several seqs,
// equivocations and tombstones, revocations of members, readers and
// stewards, and epochs, some of them not effective.
type gen struct {
	t   *testing.T
	rng *rand.Rand
	nw  *dirtest.Network
	now time.Time

	recs     []*directory.Record
	versions []charterVersionInfo // versions[i] is charter version i+1
	orgs     []*directory.Identity
	readers  []*directory.Identity

	isSteward   map[directory.PublicKey]bool
	sideOnly    map[directory.PublicKey]bool // stewards of one side of a fork only
	approvalOf  map[directory.Hash]bool      // hashes of the approval records
	revocations []directory.Hash             // proposal IDs of every revocation
	revokedBy   map[directory.Hash]directory.PublicKey
	info        map[*directory.Record]recordInfo

	tombstones, belowThreshold, shrinks int
	paged, partial                      int // rotations of several pages; pages left out
	mutual                              int // stewards revoking each other at one version
	kemEvidence                         int // evidence of a reader key's two KEM keys
	readerSelfRevoked                   int // reader keys that revoked themselves
	forkEvidence                        int // evidence of a charter fork
}

type charterVersionInfo struct {
	charter  *directory.Charter
	id       directory.Hash
	stewards []*directory.Identity
	k        int
}

func newGen(t *testing.T, rng *rand.Rand) *gen {
	n := 3 + rng.IntN(3)
	k := 2 + rng.IntN(n-1)
	nw := dirtest.New(t, n, k)
	g := &gen{
		t: t, rng: rng, nw: nw, now: nw.Now,
		isSteward:  map[directory.PublicKey]bool{},
		sideOnly:   map[directory.PublicKey]bool{},
		approvalOf: map[directory.Hash]bool{},
		info:       map[*directory.Record]recordInfo{},
	}
	g.versions = []charterVersionInfo{{charter: nw.Charter, id: nw.Genesis.ProposalID(), stewards: nw.Stewards, k: k}}
	for _, s := range nw.Stewards {
		g.isSteward[s.Public()] = true
	}
	g.add(nw.Genesis)
	return g
}

func (g *gen) add(r *directory.Record) { g.recs = append(g.recs, r) }

// outsidePolicy counts the entries beyond the per-entry limits of the
// generated charter of the given version (a fork may have won instead:
// this is coverage, not the property).
func (g *gen) outsidePolicy(version uint64) int {
	if version < 2 || int(version) > len(g.versions) {
		return 0
	}
	p := g.versions[version-1].charter.Policy
	n := 0
	for _, r := range g.recs {
		if r.Type != directory.TypeEntry {
			continue
		}
		b, err := r.DecodeBody()
		if err != nil {
			g.t.Fatal(err)
		}
		e := b.(*directory.Entry)
		if len(r.Encode()) > p.MaxRecordSize() || time.Duration(e.Expires-e.Issued)*time.Second > p.MaxEntryLife() {
			n++
		}
	}
	return n
}

func (g *gen) chance(p float64) bool { return g.rng.Float64() < p }

// pick returns n distinct identities from ids in random order.
func (g *gen) pick(ids []*directory.Identity, n int) []*directory.Identity {
	c := slices.Clone(ids)
	g.rng.Shuffle(len(c), func(i, j int) { c[i], c[j] = c[j], c[i] })
	return c[:min(n, len(c))]
}

// propose spreads signers' approval of body over the proposal record and
// separate approvals, the way co-stewards sign in practice: sometimes all
// on one record, sometimes only approvals, sometimes redundantly on both.
func (g *gen) propose(body directory.Body, signers []*directory.Identity) *directory.Record {
	carrier := unsigned(g.t, g.nw, body)
	signers = g.pick(signers, len(signers))
	onRecord := g.rng.IntN(len(signers) + 1)
	if onRecord > 0 {
		g.add(g.nw.Sign(g.t, body, signers[:onRecord]...))
		if onRecord > 1 && g.chance(0.3) {
			// The same proposal also travels with fewer signatures.
			g.add(g.nw.Sign(g.t, body, signers[0]))
		}
	}
	for i, s := range signers {
		if i < onRecord && !g.chance(0.2) {
			continue
		}
		a := approval(g.t, carrier, s)
		g.approvalOf[a.Hash()] = true
		g.add(a)
	}
	return carrier
}

func (g *gen) generate() {
	g.amend()
	for i := range 3 + g.rng.IntN(3) {
		g.admit(i)
	}
	for _, org := range g.orgs {
		for range g.rng.IntN(3) {
			r := dirtest.MustIdentity(g.t)
			g.readers = append(g.readers, r)
			g.add(g.nw.Vouch(g.t, org, r))
			if g.chance(0.1) {
				g.add(g.nw.Sign(g.t, g.entry("lectora", 1, 0), r)) // a seized reader device tries to publish
			}
		}
		g.publish(org)
	}
	if g.chance(0.1) {
		g.add(g.nw.Sign(g.t, g.entry("steward", 1, 0), g.versions[0].stewards[0])) // stewards are not members
	}
	g.revoke()
	g.rotate()
	g.heartbeats()
	g.kemEquivocation()
	g.forkOfVersion2()
	g.watermarkBeat()
	g.readersRevokeThemselves()
}

// readersRevokeThemselves adds seized reader devices revoked by their own
// revocation certificate, and now and then a grant made after: their
// grants stay as what shows the keys were admitted (found missing by the
// lead engineer: a node that held the grant no longer took the revocation
// once it restarted). Drawn last, so that the record sets the other
// generators draw stay those of earlier seeds.
func (g *gen) readersRevokeThemselves() {
	for _, r := range g.readers {
		if !g.chance(0.2) {
			continue
		}
		rv := g.nw.Sign(g.t, &directory.Revocation{Key: r.Public(), Reason: "me robaron el teléfono", Issued: g.now.Unix()}, r)
		g.add(rv)
		g.revocations = append(g.revocations, rv.ProposalID())
		g.readerSelfRevoked++
		if g.chance(0.3) {
			g.add(g.nw.Vouch(g.t, g.orgs[g.rng.IntN(len(g.orgs))], r))
		}
	}
}

// watermarkBeat adds a heartbeat of a genesis steward, past the grace,
// naming each organization's entries up to a time some copies hold and
// some do not (the organization's entries may be withheld, superseded,
// expired or revoked): whether a copy says it is behind on a member must
// be a function of the set.
func (g *gen) watermarkBeat() {
	if len(g.orgs) == 0 || !g.chance(0.5) {
		return
	}
	var ms []directory.Watermark
	for _, o := range g.orgs {
		if g.chance(0.7) {
			ms = append(ms, directory.Watermark{Member: o.Public(), Newest: g.now.Add(time.Duration(g.rng.IntN(3)-1) * time.Minute).Unix()})
		}
	}
	slices.SortFunc(ms, func(a, b directory.Watermark) int { return strings.Compare(string(a.Member[:]), string(b.Member[:])) })
	// A steward of the newest version that has not beaten yet: a newer
	// heartbeat of the same steward would replace this one.
	v := len(g.versions)
	beaten := map[directory.PublicKey]bool{}
	for _, r := range g.recs {
		if r.Type == directory.TypeHeartbeat {
			beaten[r.Sigs[0].Key] = true
		}
	}
	var st *directory.Identity
	for _, id := range g.versions[v-1].stewards {
		if !beaten[id.Public()] {
			st = id
		}
	}
	if st == nil {
		return
	}
	issued := g.now.Add(-directory.HeartbeatGrace - time.Minute)
	g.add(g.nw.Sign(g.t, &directory.Heartbeat{Charter: uint64(v), Epoch: 1, Digest: directory.Hash{9}, Issued: issued.Unix(),
		Expires: issued.Add(time.Hour).Unix(), Members: ms}, st))
}

// forkOfVersion2 adds evidence that version 1's stewards signed, in
// threshold, a second version 2: sometimes with the second side in the
// pool too, sometimes with a forged piece (the second side signed by an
// outsider), refused in every order. What the fork shows, and whether the
// chain freezes, must not depend on the order.
//
// The second side lists other stewards than version 2: one of them is a
// steward of that side only, who signs a heartbeat and an admission citing
// version 2 (sideSteward). Sometimes every steward of version 1 signs the
// second side, so that it outweighs the first and wins.
func (g *gen) forkOfVersion2() {
	if len(g.versions) < 2 || !g.chance(0.3) {
		return
	}
	v1, v2 := g.versions[0], g.versions[1]
	ids, only := g.otherSide(v2.stewards)
	fork := g.amendment(v1, ids, v2.k, g.now.Add(-3*time.Minute))
	signers := g.pick(v1.stewards, v1.k)
	if g.chance(0.3) {
		signers = v1.stewards
	}
	side := g.nw.Sign(g.t, fork, signers...)
	honest := g.nw.Sign(g.t, v2.charter, g.pick(v1.stewards, v1.k)...)
	ev, err := directory.NewEvidence(honest, side, dirtest.MustIdentity(g.t))
	if err != nil {
		g.t.Fatal(err)
	}
	g.add(ev)
	g.forkEvidence++
	if g.chance(0.6) {
		g.add(side)
	}
	g.sideSteward(2, ids, v2.k, only)
	if g.chance(0.3) {
		forged, err := directory.NewEvidence(honest, g.nw.Sign(g.t, fork, dirtest.MustIdentity(g.t)), dirtest.MustIdentity(g.t))
		if err != nil {
			g.t.Fatal(err)
		}
		g.add(forged)
	}
}

// otherSide returns ids with one of them replaced by a fresh key, and
// that key: the stewards of the other side of a fork.
func (g *gen) otherSide(ids []*directory.Identity) ([]*directory.Identity, *directory.Identity) {
	only := dirtest.MustIdentity(g.t)
	g.sideOnly[only.Public()] = true
	side := slices.Clone(ids)
	side[g.rng.IntN(len(side))] = only
	return side, only
}

// sideSteward has only, a steward of one side of a fork of version v
// (whose stewards are ids, threshold k) and not of the other, sign a
// heartbeat citing v, and approve with k-1 others the admission of an
// organization citing v: the admission takes effect exactly when that
// side is in the chain. Whether a node holds them must not depend on
// which side it linked first (SECURITY.md open issue 4).
func (g *gen) sideSteward(v uint64, ids []*directory.Identity, k int, only *directory.Identity) {
	issued := g.now.Add(-time.Duration(g.rng.IntN(3)) * time.Minute)
	g.add(g.nw.Sign(g.t, &directory.Heartbeat{Charter: v, Epoch: 1, Digest: directory.Hash{7},
		Issued: issued.Unix(), Expires: issued.Add(time.Hour).Unix()}, only))
	if !g.chance(0.7) {
		return
	}
	org := dirtest.MustIdentity(g.t)
	m := &directory.Membership{Charter: v, Org: org.Public(), KEM: org.KEMPublic(), KEMSig: org.KEMBinding(),
		Name: "Colectivo del otro lado", Issued: g.now.Unix()}
	others := slices.DeleteFunc(slices.Clone(ids), func(id *directory.Identity) bool { return id == only })
	g.propose(m, append(g.pick(others, k-1), only))
}

func (g *gen) kemEquivocation() {
	// A reader key signs a second KEM key that another organization
	// vouches for (equivocation, slot kem/<key>), sometimes with the
	// evidence of it: whether the key gets a package, and what is
	// reported, must not depend on the order.
	if len(g.readers) > 0 && len(g.orgs) > 1 && g.chance(0.3) {
		r := g.readers[g.rng.IntN(len(g.readers))]
		other := dirtest.MustIdentity(g.t)
		second := &directory.Reader{Key: r.Public(), KEM: other.KEMPublic(), KEMSig: signBindingAs(g.t, r, other.KEMPublic()), Issued: g.now.Unix() + 1}
		g2 := g.nw.Sign(g.t, second, g.orgs[g.rng.IntN(len(g.orgs))])
		g.add(g2)
		if g.chance(0.6) {
			first := g.nw.Sign(g.t, &directory.Reader{Key: r.Public(), KEM: r.KEMPublic(), KEMSig: r.KEMBinding(), Issued: g.now.Unix() + 2}, g.orgs[0])
			g.add(first)
			ev, err := directory.NewEvidence(first, g2, dirtest.MustIdentity(g.t))
			if err != nil {
				g.t.Fatal(err)
			}
			g.add(ev)
			g.kemEvidence++
		}
	}
}

// heartbeats adds heartbeats from stewards of every version (current,
// removed and revoked ones alike), some superseded by a newer one, some
// citing a version beyond the chain: which are held must not depend on
// the order.
func (g *gen) heartbeats() {
	for v, info := range g.versions {
		for _, st := range info.stewards {
			if !g.chance(0.5) {
				continue
			}
			for i := range 1 + g.rng.IntN(2) {
				issued := g.now.Add(-time.Duration(g.rng.IntN(3)+i) * time.Minute)
				g.add(g.nw.Sign(g.t, &directory.Heartbeat{Charter: uint64(v + 1 + g.rng.IntN(2)), Epoch: 1, Digest: directory.Hash{byte(i + 1)},
					Issued: issued.Unix(), Expires: issued.Add(time.Hour).Unix()}, st))
			}
		}
	}
}

// amend adds charter version 2 (and sometimes 3), a pending fork attempt
// below threshold, and rarely a real fork that the state must resolve the
// same way everywhere.
func (g *gen) amend() {
	for g.chance(0.6) && len(g.versions) < 3 {
		prev := g.versions[len(g.versions)-1]
		stewards := slices.Clone(prev.stewards)
		if len(stewards) > 2 && g.chance(0.5) {
			stewards = g.pick(stewards, len(stewards)-1)
		}
		if g.chance(0.7) {
			id := dirtest.MustIdentity(g.t)
			g.isSteward[id.Public()] = true
			stewards = append(stewards, id)
		}
		k := 2 + g.rng.IntN(len(stewards)-1)
		c := g.amendment(prev, stewards, k, g.now)
		carrier := g.propose(c, g.pick(prev.stewards, prev.k+g.rng.IntN(2)))
		if prev.k > 1 && g.chance(0.4) {
			fork := g.amendment(prev, stewards, k, g.now.Add(-time.Minute))
			g.propose(fork, g.pick(prev.stewards, prev.k-1))
		}
		if g.chance(0.1) {
			// k stewards equivocate: two valid successors, sometimes
			// listing other stewards.
			side := stewards
			var only *directory.Identity
			if g.chance(0.5) {
				side, only = g.otherSide(stewards)
			}
			fork := g.amendment(prev, side, k, g.now.Add(-2*time.Minute))
			g.propose(fork, g.pick(prev.stewards, prev.k))
			if only != nil {
				g.sideSteward(uint64(len(g.versions)+1), side, k, only)
			}
		}
		g.versions = append(g.versions, charterVersionInfo{charter: c, id: carrier.ProposalID(), stewards: stewards, k: k})
	}
}

func (g *gen) amendment(prev charterVersionInfo, ids []*directory.Identity, k int, issued time.Time) *directory.Charter {
	var stewards []directory.Steward
	for i, id := range ids {
		stewards = append(stewards, directory.Steward{Key: id.Public(), KEM: id.KEMPublic(), KEMSig: id.KEMBinding(), Name: fmt.Sprintf("steward %d", i+1)})
	}
	// Amendments set small per-author limits, different each time, so
	// which entries count changes as charters arrive; often they also
	// lower the per-entry limits below what some entries already take
	// (publishHeavy's sizes, entry's lifetimes), so which entries may be
	// shown at all changes too.
	policy := directory.Policy{MaxAuthorEntries: uint32(2 + g.rng.IntN(2)), MaxAuthorBytes: uint64(4096 + g.rng.IntN(4096))}
	if g.chance(0.5) {
		policy.MaxRecordBytes = uint32(4096 + g.rng.IntN(1024))
	}
	if g.chance(0.5) {
		policy.MaxEntryLifetime = uint32((60 + g.rng.IntN(60)) * 24 * 3600)
	}
	c, err := directory.Amend(prev.charter, prev.id, stewards, k, policy, issued)
	if err != nil {
		g.t.Fatal(err)
	}
	return c
}

func (g *gen) admit(i int) {
	org := dirtest.MustIdentity(g.t)
	g.orgs = append(g.orgs, org)
	cite := g.rng.IntN(len(g.versions))
	v := g.versions[cite]
	n := v.k
	if g.chance(0.15) {
		n = v.k - 1 // stays pending; its entries must stay invisible
		g.belowThreshold++
	}
	m := &directory.Membership{Charter: uint64(cite + 1), Org: org.Public(), KEM: org.KEMPublic(), KEMSig: org.KEMBinding(),
		Name: fmt.Sprintf("Colectivo %d", i), Issued: g.now.Unix()}
	signers := g.pick(v.stewards, n)
	if g.chance(0.15) {
		// Someone who is not a steward of the cited version signs too:
		// a removed steward, or a member organization overstepping.
		extra := g.pick(append(slices.Clone(g.versions[0].stewards), g.orgs...), 1)[0]
		if !slices.Contains(signers, extra) {
			signers = append(signers, extra)
		}
	}
	if len(signers) > 0 {
		g.propose(m, signers)
	}
	if g.chance(0.15) {
		// A later membership renames the organization.
		m2 := *m
		m2.Name += " (nuevo nombre)"
		m2.Issued++
		g.propose(&m2, g.pick(v.stewards, v.k))
	}
}

var (
	propCities = []directory.Area{{City: "Ciudad de México", Country: "MX"}, {City: "Bogotá", Country: "CO"}, {Text: "en línea"}}
	propKinds  = [][]string{{"legal", "migration"}, {"shelter"}, {"psychosocial", "health"}, {"digital-security"}}
	propWords  = []string{"asesoria juridica", "refugio temporal", "acompañamiento", "atención psicosocial"}
)

func (g *gen) entry(id string, seq uint64, variant int) *directory.Entry {
	e := dirtest.SampleEntry(id, seq, g.now)
	s := e.Service
	s.Categories = propKinds[g.rng.IntN(len(propKinds))]
	s.Areas = []directory.Area{propCities[g.rng.IntN(len(propCities))]}
	s.Languages = [][]string{{"es"}, {"es", "en"}}[g.rng.IntN(2)]
	s.Name = fmt.Sprintf("Servicio %s", id)
	s.Description = fmt.Sprintf("%s, versión %d.%d", propWords[g.rng.IntN(len(propWords))], seq, variant)
	if g.chance(0.4) {
		// Lifetimes either side of what amendments allow.
		e.Expires = g.now.Add(time.Duration(30+g.rng.IntN(150)) * 24 * time.Hour).Unix()
	}
	return e
}

func (g *gen) publish(org *directory.Identity) {
	if g.chance(0.35) {
		g.publishHeavy(org)
		return
	}
	for j := range 1 + g.rng.IntN(3) {
		id := fmt.Sprintf("svc-%d", j)
		last := uint64(1 + g.rng.IntN(3))
		for seq := uint64(1); seq <= last; seq++ {
			e := g.entry(id, seq, 0)
			if seq == last && seq > 1 && g.chance(0.25) {
				e.Deleted, e.Service = true, nil
				g.tombstones++
			}
			orig := g.nw.Sign(g.t, e, org)
			g.add(orig)
			if g.chance(0.2) {
				// Equivocation: same seq, different content.
				other := g.nw.Sign(g.t, g.entry(id, seq, 1), org)
				reports := g.rng.IntN(3)
				if reports == 0 || g.chance(0.7) {
					g.add(other)
				} // else the other version is known only from evidence
				// Evidence of it, from one or two reporters.
				for range reports {
					ev, err := directory.NewEvidence(orig, other, dirtest.MustIdentity(g.t))
					if err != nil {
						g.t.Fatal(err)
					}
					g.add(ev)
				}
			}
		}
	}
}

// publishHeavy has org publish more and larger entries than amended
// charters allow, and sometimes shrink or delete one of them afterwards,
// which lets a held entry back into view.
func (g *gen) publishHeavy(org *directory.Identity) {
	for j := range 3 + g.rng.IntN(2) {
		id := fmt.Sprintf("big-%d", j)
		e := g.entry(id, 1, 0)
		if g.chance(0.6) {
			e.Service.Description = strings.Repeat("refugio ", 250+g.rng.IntN(240))
		}
		g.add(g.nw.Sign(g.t, e, org))
		if g.chance(0.4) {
			small := g.entry(id, 2, 0)
			if g.chance(0.3) {
				small.Deleted, small.Service = true, nil
				g.tombstones++
			}
			g.shrinks++
			g.add(g.nw.Sign(g.t, small, org))
		}
	}
}

func (g *gen) stewardRevocation(key directory.PublicKey, cite int, signers []*directory.Identity) {
	rv := &directory.Revocation{Key: key, Charter: uint64(cite + 1), Reason: "dispositivo incautado", Issued: g.now.Unix()}
	carrier := g.propose(rv, signers)
	g.revocations = append(g.revocations, carrier.ProposalID())
	if g.revokedBy == nil {
		g.revokedBy = map[directory.Hash]directory.PublicKey{}
	}
	g.revokedBy[carrier.ProposalID()] = key
}

func (g *gen) revoke() {
	for _, org := range g.orgs {
		if g.chance(0.15) {
			rv := &directory.Revocation{Key: org.Public(), Reason: "perdí la laptop", Issued: g.now.Unix()}
			r := g.nw.Sign(g.t, rv, org)
			g.add(r)
			g.revocations = append(g.revocations, r.ProposalID())
		}
		if g.chance(0.15) {
			cite := g.rng.IntN(len(g.versions))
			v := g.versions[cite]
			g.stewardRevocation(org.Public(), cite, g.pick(v.stewards, v.k))
		}
	}
	for _, r := range g.readers {
		if g.chance(0.1) {
			v := g.versions[0]
			g.stewardRevocation(r.Public(), 0, g.pick(v.stewards, v.k))
		}
	}
	// A steward revokes its own key (its revocation.cert, after a seizure):
	// valid by itself, it names no version (found missing in review).
	if g.chance(0.25) {
		v := g.versions[g.rng.IntN(len(g.versions))]
		st := v.stewards[g.rng.IntN(len(v.stewards))]
		r := g.nw.Sign(g.t, &directory.Revocation{Key: st.Public(), Reason: "me incautaron", Issued: g.now.Unix()}, st)
		g.add(r)
		g.revocations = append(g.revocations, r.ProposalID())
	}
	// A compromised steward, revoked by k others citing a version it is a
	// steward of. Its approvals scattered over the other proposals must
	// count the same whatever the order: on revocations citing later
	// versions it has no weight, so some of them lose their threshold and
	// the key they name comes back, whether that revocation arrived first
	// or not.
	cite := 0
	if g.chance(0.3) {
		cite = g.rng.IntN(len(g.versions))
	}
	v := g.versions[cite]
	if len(v.stewards) > v.k && g.chance(0.7) {
		// Preferably one that stays a steward of the next version, so
		// that it can co-sign a revocation citing that version below.
		pool := v.stewards
		if cite+1 < len(g.versions) {
			if both := slices.DeleteFunc(slices.Clone(v.stewards), func(s *directory.Identity) bool {
				return !slices.Contains(g.versions[cite+1].stewards, s)
			}); len(both) > 0 {
				pool = both
			}
		}
		bad := pool[g.rng.IntN(len(pool))]
		others := slices.DeleteFunc(slices.Clone(v.stewards), func(s *directory.Identity) bool { return s == bad })
		g.stewardRevocation(bad.Public(), cite, g.pick(others, v.k))
		if g.chance(0.3) {
			// It and k-1 others revoke one of its revokers at the same
			// version: neither revocation takes weight from the other.
			victim := others[g.rng.IntN(len(others))]
			rest := slices.DeleteFunc(slices.Clone(others), func(s *directory.Identity) bool { return s == victim })
			g.mutual++
			g.stewardRevocation(victim.Public(), cite, append(g.pick(rest, v.k-1), bad))
		}
		// It and just enough others revoke an organization citing a
		// later version: that revocation lacks its threshold without it.
		if later := cite + 1 + g.rng.IntN(max(1, len(g.versions)-cite-1)); later < len(g.versions) && len(g.orgs) > 0 {
			lv := g.versions[later]
			if slices.Contains(lv.stewards, bad) {
				rest := slices.DeleteFunc(slices.Clone(lv.stewards), func(s *directory.Identity) bool { return s == bad })
				org := g.orgs[g.rng.IntN(len(g.orgs))]
				g.stewardRevocation(org.Public(), later, append(g.pick(rest, lv.k-1), bad))
			}
		}
	}
}

func (g *gen) rotate() {
	cite := g.rng.IntN(len(g.versions))
	v := g.versions[cite]
	recipients := g.recipients(v.stewards)
	var after directory.Hash
	var target directory.PublicKey
	if len(g.revocations) > 0 {
		after = g.revocations[g.rng.IntN(len(g.revocations))]
		if k, ok := g.revokedBy[after]; ok {
			target = k
		}
	}
	with := func(rs []directory.Recipient, k directory.PublicKey) []directory.Recipient {
		if k == (directory.PublicKey{}) {
			return rs
		}
		return append(slices.Clone(rs), directory.Recipient{Key: k, KEM: g.recipientKEM(k)})
	}
	// Each rotation comes as its epoch record and its pages (small
	// records, so one rotation takes several). Pages are relayed by one
	// of the version's stewards (who may be revoked), sometimes by two,
	// and sometimes one never arrives: the rotation stays partial.
	propose := func(n uint64, after directory.Hash, rs []directory.Recipient, signers []*directory.Identity) {
		e, pages, err := directory.NewEpoch(g.nw.ID, n, uint64(cite+1), after, directory.NewReadKey(), rs, g.now, 4096)
		if err != nil {
			g.t.Fatal(err)
		}
		g.propose(e, signers)
		for _, pg := range pages {
			if g.chance(0.05) {
				g.partial++
				continue
			}
			relays := g.pick(v.stewards, 1+g.rng.IntN(2))
			for _, s := range relays {
				g.add(g.nw.Sign(g.t, pg, s))
			}
		}
		if len(pages) > 1 {
			g.paged++
		}
	}
	// Epoch 1 seals to the key a revocation may remove, so the automatic
	// rotation after it can take effect.
	propose(1, directory.Hash{}, with(recipients, target), g.pick(v.stewards, v.k))
	if g.chance(0.3) {
		propose(1, directory.Hash{}, recipients, g.pick(v.stewards, v.k)) // two keys for one epoch
	}
	if after != (directory.Hash{}) {
		// The automatic rotation one steward signs after a revocation:
		// effective only if stewards revoked a key that held a package,
		// and once all its pages are held.
		propose(2, after, recipients, g.pick(v.stewards, 1))
		if g.chance(0.3) {
			// One that still seals to the revoked key proves nothing.
			propose(2, after, with(recipients, target), g.pick(v.stewards, 1))
		}
	}
	if v.k > 1 && g.chance(0.3) {
		propose(3, directory.Hash{}, recipients, g.pick(v.stewards, 1)) // never effective
	}
	if g.chance(0.2) {
		propose(5, directory.Hash{}, recipients, g.pick(v.stewards, v.k)) // skips 3 and 4: never effective
	}
}

func (g *gen) identities() []*directory.Identity {
	ids := append(slices.Clone(g.orgs), g.readers...)
	for _, v := range g.versions {
		ids = append(ids, v.stewards...)
	}
	return ids
}

// recipientKEM is the encapsulation key of a generated identity.
func (g *gen) recipientKEM(k directory.PublicKey) []byte {
	for _, id := range g.identities() {
		if id.Public() == k {
			return id.KEMPublic()
		}
	}
	g.t.Fatalf("no identity for %s", directory.Fingerprint(k))
	return nil
}

func (g *gen) recipients(ids []*directory.Identity) []directory.Recipient {
	var out []directory.Recipient
	// Who receives the key does not change the view; a few packages keep
	// HPKE from dominating the test's time.
	for _, id := range ids[:1+g.rng.IntN(2)] {
		out = append(out, directory.Recipient{Key: id.Public(), KEM: id.KEMPublic(), KEMSig: id.KEMBinding()})
	}
	return out
}

// recordInfo is what noteOrder needs of a record, worked out once.
type recordInfo struct {
	approval bool
	proposal directory.Hash
	revokes  *directory.PublicKey
	signers  []directory.PublicKey
}

func (g *gen) note(r *directory.Record) {
	in := recordInfo{approval: g.approvalOf[r.Hash()], proposal: r.ProposalID()}
	if b, err := r.DecodeBody(); err == nil && r.Type == directory.TypeRevocation {
		in.revokes = &b.(*directory.Revocation).Key
	}
	for _, sg := range r.Sigs {
		in.signers = append(in.signers, sg.Key)
	}
	g.info[r] = in
}

// noteOrder counts the orders that deliver an approval before the record
// it approves, or a revocation before what the revoked key signed.
func (g *gen) noteOrder(order []*directory.Record, cover *coverage) {
	seenProposal := map[directory.Hash]bool{}
	seenRevocation := map[directory.PublicKey]bool{}
	for _, r := range order {
		in := g.info[r]
		switch {
		case in.approval:
			if !seenProposal[in.proposal] {
				cover.approvalFirst++
			}
		case in.revokes != nil:
			seenRevocation[*in.revokes] = true
		default:
			seenProposal[in.proposal] = true
			for _, k := range in.signers {
				if seenRevocation[k] {
					cover.revocationFirst++
				}
			}
		}
	}
}
