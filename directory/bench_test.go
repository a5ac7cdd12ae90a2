package directory_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// The design measures "records validated per second against raw Ed25519
// verifications per second": compare records/s of BenchmarkIngest with
// verifies/s of BenchmarkEd25519Verify.
//
//	go test -run '^$' -bench 'SealSign|OpenVerify|ApplyEntry|Ingest|Ed25519Verify' -benchmem ./directory/
//
// The ratio is records/s of BenchmarkIngest/verify=once over verifies/s.

func BenchmarkSealSign(b *testing.B) {
	nw := dirtest.New(b, 3, 2)
	org := dirtest.MustIdentity(b)
	e := dirtest.SampleEntry("asesoria", 1, nw.Now)
	for b.Loop() {
		e.Seq++
		r, err := directory.NewRecord(nw.ID, e, org)
		if err != nil {
			b.Fatal(err)
		}
		directory.Seal(r, nw.Key)
	}
	reportRate(b, "records/s")
}

func BenchmarkOpenVerify(b *testing.B) {
	nw := dirtest.New(b, 3, 2)
	org := dirtest.MustIdentity(b)
	sealed := directory.Seal(nw.Entry(b, org, "asesoria", 1), nw.Key)
	keys := directory.Keyring{1: nw.Key}
	for b.Loop() {
		if _, err := directory.Open(sealed, nw.ID, keys); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, "records/s")
}

// BenchmarkOpenVouched is what re-opening a stored record costs a node
// starting up on its checkpoint (node/checkpoint.go): "vouched" is
// OpenVerified of a record whose hash the checkpoint lists (no signature
// check, no canonical re-encoding), "vouched-all" the same for a
// checkpoint of a build with the same RecordRules (the entry's body not
// decoded), "unverified" OpenUnverified of the
// same record, the same work with the canonical check, the comparator.
// OpenVerified decrypts in place, so every iteration opens a fresh copy of
// the sealing (a 1 KiB copy, made for the comparator too), as a start
// opens the store's copy of each record.
//
//	go test -run '^$' -bench 'OpenVouched' -count 5 ./directory/
func BenchmarkOpenVouched(b *testing.B) {
	nw := dirtest.New(b, 3, 2)
	org := dirtest.MustIdentity(b)
	rec := nw.Entry(b, org, "asesoria", 1)
	sealed := directory.Seal(rec, nw.Key)
	keys := directory.Keyring{1: nw.Key}
	want := rec.Hash()
	vouch := func(v directory.Vouched) func(directory.Hash) directory.Vouched {
		return func(h directory.Hash) directory.Vouched {
			if h == want {
				return v
			}
			return directory.VouchedNothing
		}
	}
	work := make([]byte, len(sealed))
	fresh := func() []byte { copy(work, sealed); return work }
	b.Run("vouched", func(b *testing.B) {
		for b.Loop() {
			if _, err := directory.OpenVerified(fresh(), nw.ID, keys, vouch(directory.VouchedSignatures)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("vouched-all", func(b *testing.B) {
		for b.Loop() {
			if _, err := directory.OpenVerified(fresh(), nw.ID, keys, vouch(directory.VouchedAll)); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unverified", func(b *testing.B) {
		for b.Loop() {
			if _, err := directory.OpenUnverified(fresh(), nw.ID, keys); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkKeyTagLookup is what finding a record's key by its header tag
// costs a node that holds keys epochs keys, in the worst cases: the record
// is sealed under the oldest key, or under a key the node does not hold
// (an unknown tag, as a flooder sends). Open looks from the newest key
// down; each key's tag is computed once and remembered.
func BenchmarkKeyTagLookup(b *testing.B) {
	nw := dirtest.New(b, 3, 2)
	org := dirtest.MustIdentity(b)
	rec := nw.Entry(b, org, "asesoria", 1)
	for _, epochs := range []int{1, 64} {
		kr := directory.Keyring{}
		for e := 1; e <= epochs; e++ {
			kr[uint64(e)] = directory.NewReadKey()
		}
		for _, tc := range []struct {
			name string
			key  directory.ReadKey
			want bool
		}{{"oldest", kr[1], true}, {"unknown", directory.NewReadKey(), false}} {
			tag, _ := directory.SealedTag(directory.Seal(rec, tc.key))
			b.Run(fmt.Sprintf("keys=%d/%s", epochs, tc.name), func(b *testing.B) {
				for b.Loop() {
					if _, _, ok := kr.ByTag(tag); ok != tc.want {
						b.Fatalf("ByTag found = %v, want %v", ok, tc.want)
					}
				}
			})
		}
	}
}

// BenchmarkApplyEntry applies one entry update, as a peer holds it after
// Open, to a state that already shows n entries. Updates keep n constant.
func BenchmarkApplyEntry(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			fx := entryFixture(b, n)
			recs := fx.updates(b, b.N)
			b.ResetTimer()
			for i := range b.N {
				if _, err := fx.state.Apply(recs[i]); err != nil {
					b.Fatal(err)
				}
			}
			fx.state.FlushIndex()
			reportRate(b, "records/s")
		})
	}
}

// BenchmarkDigest computes the state's digest afresh, as the first status
// request or sync hello after a change does.
func BenchmarkDigest(b *testing.B) {
	fx := entryFixture(b, 10000)
	want := fx.state.Digest()
	for b.Loop() {
		if directory.ComputeDigestForTest(fx.state) != want {
			b.Fatal("the digest computed afresh differs from the one kept")
		}
	}
}

// BenchmarkDecodeIndexSnapshot decodes the search index snapshot of a
// 10,000-entry state, as every start does alongside reading the store.
func BenchmarkDecodeIndexSnapshot(b *testing.B) {
	snap := entryFixture(b, 10000).state.EncodeIndexSnapshot()
	b.SetBytes(int64(len(snap)))
	for b.Loop() {
		if _, err := directory.DecodeIndexSnapshot(snap); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIngest is the whole receive path of one record: open the seal,
// decode, verify, validate against the state and apply. verify=twice hands
// Apply a copy that lost Open's mark, as every record did before Apply
// learnt to trust Open: the difference is what the mark saves.
func BenchmarkIngest(b *testing.B) {
	for _, twice := range []bool{false, true} {
		name := "verify=once"
		if twice {
			name = "verify=twice"
		}
		b.Run(name, func(b *testing.B) {
			fx := entryFixture(b, 1000)
			keys := directory.Keyring{1: fx.nw.Key}
			sealed := fx.sealedUpdates(b, b.N)
			b.ResetTimer()
			for i := range b.N {
				r, err := directory.Open(sealed[i], fx.nw.ID, keys)
				if err != nil {
					b.Fatal(err)
				}
				if twice {
					r = clone(r)
				}
				if _, err := fx.state.Apply(r); err != nil {
					b.Fatal(err)
				}
			}
			// The index takes the last of its changes (it takes them
			// 256 at a time as they come).
			fx.state.FlushIndex()
			reportRate(b, "records/s")
		})
	}
}

// BenchmarkIngestRevocation is the receive path of a revocation, as every
// node takes one a steward's quorum (two of three here) signed: open,
// decode, verify both signatures, apply (the governance is derived again)
// and take its three entries out of the index (FlushIndex: a node does it
// after forwarding, but does it), on a state of twenty organizations, as
// in the simulator's revocation runs. Its floor is two
// BenchmarkEd25519Verify.
func BenchmarkIngestRevocation(b *testing.B) {
	nw := dirtest.New(b, 3, 2)
	keys := directory.Keyring{1: nw.Key}
	var admits []*directory.Record
	for i := range 20 {
		admits = append(admits, nw.Admit(b, dirtest.MustIdentity(b), fmt.Sprintf("Colectivo %d", i)))
	}
	for b.Loop() {
		b.StopTimer()
		st := nw.State()
		org := dirtest.MustIdentity(b)
		recs := append([]*directory.Record{nw.Genesis, nw.Admit(b, org, "Colectivo revocado")}, admits...)
		for j := range 3 {
			recs = append(recs, nw.Entry(b, org, fmt.Sprintf("servicio-%d", j), 1))
		}
		for _, r := range recs {
			if _, err := st.Apply(r); err != nil {
				b.Fatal(err)
			}
		}
		st.FlushIndex()
		sealed := directory.Seal(nw.RevokeBy(b, org.Public()), nw.Key)
		b.StartTimer()
		r, err := directory.Open(sealed, nw.ID, keys)
		if err != nil {
			b.Fatal(err)
		}
		if a, err := st.Apply(r); err != nil || !a.Changed {
			b.Fatalf("revocation applied: %+v, %v", a, err)
		}
		st.FlushIndex()
	}
	reportRate(b, "records/s")
}

// BenchmarkEd25519Verify is the floor under BenchmarkIngest: one raw
// signature check over a message the size of an entry's signing input.
func BenchmarkEd25519Verify(b *testing.B) {
	nw := dirtest.New(b, 3, 2)
	r := nw.Entry(b, dirtest.MustIdentity(b), "asesoria", 1)
	msg := make([]byte, len("ceiba/v1/entry")+1+len(nw.ID)+len(r.Body))
	rand.Read(msg)
	pub, priv, _ := ed25519.GenerateKey(rand.Reader)
	sig := ed25519.Sign(priv, msg)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if !ed25519.Verify(pub, msg, sig) {
			b.Fatal("signature does not verify")
		}
	}
	reportRate(b, "verifies/s")
}

func reportRate(b *testing.B, unit string) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), unit)
}

// benchFixture is a network whose state shows n entries of 20 member
// organizations. Building it costs seconds, so one is kept per size across
// the benchmark's runs; updates raise seqs, so the state never grows.
type benchFixture struct {
	nw    *dirtest.Network
	orgs  []*directory.Identity
	state *directory.State
	n     int
	seq   uint64 // the seq every entry has reached
	next  int    // the entry the next update rewrites
}

var benchFixtures = map[int]*benchFixture{}

func entryFixture(b *testing.B, n int) *benchFixture {
	if fx := benchFixtures[n]; fx != nil {
		return fx
	}
	nw := dirtest.New(b, 3, 2)
	fx := &benchFixture{nw: nw, state: nw.State(), n: n, seq: 1}
	if _, err := fx.state.Apply(nw.Genesis); err != nil {
		b.Fatal(err)
	}
	for i := range 20 {
		org := dirtest.MustIdentity(b)
		fx.orgs = append(fx.orgs, org)
		if _, err := fx.state.Apply(nw.Admit(b, org, fmt.Sprintf("Colectivo %d", i))); err != nil {
			b.Fatal(err)
		}
	}
	for i := range n {
		if _, err := fx.state.Apply(fx.entry(b, i, 1)); err != nil {
			b.Fatal(err)
		}
	}
	if got := fx.state.Stats().Entries; got != n {
		b.Fatalf("fixture shows %d entries, want %d", got, n)
	}
	benchFixtures[n] = fx
	return fx
}

func (fx *benchFixture) entry(b *testing.B, i int, seq uint64) *directory.Record {
	r, err := fx.decodedEntry(i, seq)
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// decodedEntry is entry i at seq, signed by its organization and decoded
// the way Open returns it.
func (fx *benchFixture) decodedEntry(i int, seq uint64) (*directory.Record, error) {
	e := dirtest.SampleEntry(fmt.Sprintf("servicio-%d", i), seq, fx.nw.Now)
	e.Service.Description = fmt.Sprintf("Acompañamiento legal número %d, versión %d.", i, seq)
	r, err := directory.NewRecord(fx.nw.ID, e, fx.orgs[i%len(fx.orgs)])
	if err != nil {
		return nil, err
	}
	return directory.DecodeRecord(r.Encode())
}

// updates returns count entry updates, each raising one entry's seq.
func (fx *benchFixture) updates(b *testing.B, count int) []*directory.Record {
	type update struct {
		i   int
		seq uint64
	}
	plan := make([]update, count)
	for k := range plan {
		if fx.next == fx.n {
			fx.next, fx.seq = 0, fx.seq+1
		}
		plan[k] = update{fx.next, fx.seq + 1}
		fx.next++
	}
	// Signing and verifying them takes longer than the run they feed;
	// spread it over the cores.
	out, errs := make([]*directory.Record, count), make([]error, count)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for k := w; k < count; k += workers {
				out[k], errs[k] = fx.decodedEntry(plan[k].i, plan[k].seq)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	return out
}

func (fx *benchFixture) sealedUpdates(b *testing.B, count int) [][]byte {
	out := make([][]byte, count)
	for i, r := range fx.updates(b, count) {
		out[i] = directory.Seal(r, fx.nw.Key)
	}
	return out
}
