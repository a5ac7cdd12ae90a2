package sim

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
)

// The simulator's benchmarks. Each b.Loop iteration is one measured event
// (a publication, a revocation, a catch-up, a DHT operation); the figures
// reported are medians over the iterations, so run them with a fixed
// count, as make bench does:
//
//	go test -run '^$' -bench 'Gossip/n=100/' -benchtime 5x -timeout 0 ./bench/sim/
//
// ns/op is the mean time of an iteration's timed part and means little
// here; the custom metrics are the results.

// gossipCase is one network on which publication and revocation are timed.
type gossipCase struct {
	n       int
	latency time.Duration
	topo    Topology
	loss    float64
}

func (c gossipCase) String() string {
	return fmt.Sprintf("n=%d/lat=%dms/%s/loss=%g%%", c.n, c.latency.Milliseconds(), c.topo, 100*c.loss)
}

var gossipCases = func() []gossipCase {
	var cs []gossipCase
	for _, n := range []int{10, 100, 1000} {
		for _, lat := range []time.Duration{0, 20 * time.Millisecond} {
			cs = append(cs, gossipCase{n: n, latency: lat, topo: Sparse})
		}
	}
	for _, lat := range []time.Duration{0, 20 * time.Millisecond} {
		cs = append(cs, gossipCase{n: 100, latency: lat, topo: Dense})
	}
	cs = append(cs,
		gossipCase{n: 1000, latency: 20 * time.Millisecond, topo: Dense},
		gossipCase{n: 100, latency: 20 * time.Millisecond, topo: Sparse, loss: 0.01},
		gossipCase{n: 100, latency: 20 * time.Millisecond, topo: Sparse, loss: 0.05},
	)
	return cs
}()

// BenchmarkGossip times, on each network, how long a new entry takes to
// be searchable on 50%, 99% and 100% of the nodes (publish) and how long
// a revocation takes to be enforced on them, from the approval that
// completes the stewards' quorum (revoke) and as one record carrying the
// quorum's signatures (revoke-cosigned), each against the bare GossipSub
// delivery of a message of the same size from the same node on the same
// hosts and links.
func BenchmarkGossip(b *testing.B) {
	for _, c := range gossipCases {
		b.Run(c.String(), func(b *testing.B) { gossipBench(b, c, "") })
	}
}

// BenchmarkGossipOnDisk is BenchmarkGossip's small networks at 0 ms links
// with every node's store on disk (Config.Disk), as a daemon keeps it:
// there every record a node takes by gossip is made durable, and a write
// on the way between taking a record and handing it on adds to every hop.
// Bare GossipSub writes nothing, so the ratio shows what the write costs.
func BenchmarkGossipOnDisk(b *testing.B) {
	for _, n := range []int{10, 100} {
		c := gossipCase{n: n, topo: Sparse}
		b.Run(c.String(), func(b *testing.B) { gossipBench(b, c, b.TempDir()) })
	}
}

func gossipBench(b *testing.B, c gossipCase, disk string) {
	ctx := context.Background()
	nw, err := New(ctx, Config{N: c.n, Latency: c.latency, Topology: c.topo, Loss: c.loss, Orgs: 1, Bare: true, Seed: uint64(c.n), Disk: disk})
	if err != nil {
		b.Fatal(err)
	}
	defer nw.Close()
	timeout := 30*time.Second + 100*c.latency
	warmUp(b, nw, timeout)
	next := 1
	b.Run("publish", func(b *testing.B) { publishRuns(b, nw, nw.RandomNode, &next, timeout) })
	// A revocation as stewards make it: the proposal and every approval
	// but the last spread untimed, then the approval that completes the
	// quorum, timed until every node enforces it.
	b.Run("revoke", func(b *testing.B) {
		revokeRuns(b, nw, &next, timeout, func(d *Doomed) (*directory.Record, error) { return nw.PrepareApproval(ctx, d) })
	})
	if disk != "" {
		// BenchmarkGossipOnDisk measures the durable write on a hop's
		// path, which the revocation's form does not change.
		return
	}
	// The same revocation as one record carrying the quorum's signatures,
	// which every hop checks all of: what sync hands on, and what issue
	// 17 first measured.
	b.Run("revoke-cosigned", func(b *testing.B) {
		revokeRuns(b, nw, &next, timeout, nw.Revocation)
	})
}

// revokeRuns times, for each iteration, the revocation record returns for
// a freshly admitted organization with three entries everywhere, published
// on a random node, until every node enforces it, against bare GossipSub;
// it checks every node enforces it, and reports.
func revokeRuns(b *testing.B, nw *Network, next *int, timeout time.Duration, record func(*Doomed) (*directory.Record, error)) {
	var rs []Result
	var missed int
	for b.Loop() {
		b.StopTimer()
		d, err := nw.PrepareRevocation(context.Background(), 3, 1_000_000+*next)
		if err != nil {
			b.Fatal(err)
		}
		*next += 3
		rv, err := record(d)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		res, err := nw.Compare(context.Background(), nw.RandomNode(), rv, len(rs)%2 == 1, timeout)
		missed += countMissed(b, res, err)
		if err == nil {
			b.StopTimer()
			if err := nw.Revoked(d); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		rs = append(rs, res)
	}
	report(b, rs, missed, timeout, "enforced")
}

// warmUp sends entry 0 once, unmeasured: it takes both routers through
// their first-message paths (stream setup, IDONTWANT negotiation).
func warmUp(b *testing.B, nw *Network, timeout time.Duration) {
	warm, err := nw.Entry(0, 0)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := nw.Compare(context.Background(), 0, warm, false, timeout); err != nil {
		b.Fatal(err)
	}
}

// publishRuns times, for each iteration, an entry published on the node
// origin picks until it is searchable on every node, against bare
// GossipSub (which goes first every other run), checks every node's search
// finds it, and reports. next numbers the entries.
func publishRuns(b *testing.B, nw *Network, origin func() int, next *int, timeout time.Duration) {
	ctx := context.Background()
	var rs []Result
	var missed int
	for b.Loop() {
		r, err := nw.Entry(0, *next)
		if err != nil {
			b.Fatal(err)
		}
		res, err := nw.Compare(ctx, origin(), r, len(rs)%2 == 1, timeout)
		missed += countMissed(b, res, err)
		if err == nil {
			b.StopTimer()
			if err := nw.Searchable(Token(*next)); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		rs = append(rs, res)
		*next++
	}
	report(b, rs, missed, timeout, "searchable")
}

// countMissed turns nodes that never got a message into a count, so a run
// reports them instead of failing; any other error fails it.
func countMissed(b *testing.B, res Result, err error) int {
	var me *MissingError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &me):
		b.Logf("%v", err)
		return me.Missing
	}
	b.Fatal(err)
	return 0
}

// report prints each iteration and reports the medians. A percentile that
// some nodes missed counts as the timeout, a lower bound.
func report(b *testing.B, rs []Result, missed int, timeout time.Duration, what string) {
	if len(rs) == 0 {
		return
	}
	pct := func(s Sample, q float64, n int) float64 {
		d := s.Pct(q, n)
		if d < 0 {
			d = timeout
		}
		return ms(d)
	}
	var c, br [3][]float64
	var ratio [3][]float64
	var ccpu, bcpu []float64
	for i, r := range rs {
		ccpu, bcpu = append(ccpu, ms(r.CeibaCPU)), append(bcpu, ms(r.BareCPU))
		for j, q := range []float64{0.5, 0.99, 1} {
			cv, bv := pct(r.Ceiba, q, r.N), pct(r.Bare, q, r.N)
			c[j], br[j] = append(c[j], cv), append(br[j], bv)
			ratio[j] = append(ratio[j], cv/max(bv, 1e-3))
		}
		b.Logf("run %d: %s on 50/99/100%% of %d nodes after %.2f/%.2f/%.2f ms (CPU %.0f ms); bare GossipSub %.2f/%.2f/%.2f ms (CPU %.0f ms); %d bytes",
			i+1, what, r.N, c[0][i], c[1][i], c[2][i], ccpu[i], br[0][i], br[1][i], br[2][i], bcpu[i], r.Bytes)
	}
	for j, name := range []string{"p50", "p99", "p100"} {
		b.ReportMetric(median(c[j]), "ceiba-"+name+"-ms")
		b.ReportMetric(median(br[j]), "bare-"+name+"-ms")
		b.ReportMetric(median(ratio[j]), "ratio-"+name)
	}
	b.ReportMetric(median(ccpu), "ceiba-cpu-ms")
	b.ReportMetric(median(bcpu), "bare-cpu-ms")
	b.ReportMetric(float64(rs[0].Bytes), "bytes")
	b.ReportMetric(float64(missed), "missed-nodes")
	b.Logf("median over %d runs: %s on 99%% after %.2f ms, 100%% after %.2f ms; bare %.2f / %.2f ms; ratio p99 %.2f, p100 %.2f",
		len(rs), what, median(c[1]), median(c[2]), median(br[1]), median(br[2]), median(ratio[1]), median(ratio[2]))
	b.Logf("rerun: go test -run '^$' -bench '%s$' -benchtime %dx -timeout 0 ./bench/sim/", benchPattern(b.Name()), len(rs))
}

// BenchmarkNodeHeap is the Go heap one simulated node costs at N = 1,000:
// its mock host, GossipSub router, sync, state and store, holding the
// founding records, without the bare baseline. Heap is measured after a
// GC before the network starts and once it has converged.
func BenchmarkNodeHeap(b *testing.B) {
	for _, n := range []int{1000} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			var per []float64
			for b.Loop() {
				before := heapNow()
				nw, err := New(context.Background(), Config{N: n, Orgs: 1, Seed: 9})
				if err != nil {
					b.Fatal(err)
				}
				after := heapNow()
				per = append(per, float64(after-before)/float64(n))
				b.Logf("heap: %.1f MiB for %d nodes, %.0f KiB per node", float64(after-before)/(1<<20), n, per[len(per)-1]/1024)
				nw.Close()
			}
			b.ReportMetric(median(per)/1024, "heap-KiB/node")
			b.Logf("median over %d runs: %.0f KiB per node", len(per), median(per)/1024)
			b.Logf("rerun: go test -run '^$' -bench '%s$' -benchtime %dx -timeout 0 ./bench/sim/", benchPattern(b.Name()), len(per))
		})
	}
}

func heapNow() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// benchPattern turns a benchmark's full name into a -bench pattern that
// selects it: each level anchored, regexp characters escaped.
func benchPattern(name string) string {
	out := []byte{}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case '.', '+', '*', '?', '(', ')', '[', ']', '{', '}', '^', '$', '|', '\\':
			out = append(out, '\\', c)
		case '/':
			out = append(out, '$', '/', '^')
		default:
			out = append(out, c)
		}
	}
	return "^" + string(out)
}

// BenchmarkCatchUp times a node that was offline through a round of
// updates converging after it reconnects, by sync alone and by the DHT
// alone (see CatchUp). Sync is timed reconnecting to all the node's
// neighbours, as it would, and to one only, which shows what concurrent
// sessions that pull the same records cost.
func BenchmarkCatchUp(b *testing.B) {
	for _, via := range []string{"sync", "dht"} {
		for _, updates := range []int{1000, 10000} {
			b.Run(fmt.Sprintf("via=%s/updates=%d", via, updates), func(b *testing.B) {
				ctx := context.Background()
				c, err := NewCatchUp(ctx, updates, via == "dht", uint64(updates))
				if err != nil {
					b.Fatal(err)
				}
				defer c.Close()
				variants := []int{0}
				if via == "sync" {
					variants = append(variants, 1)
				}
				for _, k := range variants {
					name := "neighbours=all"
					if k > 0 {
						name = fmt.Sprintf("neighbours=%d", k)
					}
					b.Run(name, func(b *testing.B) {
						c.Neighbours = k
						var took []float64
						for b.Loop() {
							b.StopTimer()
							res, err := c.Run(ctx)
							if err != nil {
								b.Fatal(err)
							}
							b.StartTimer()
							took = append(took, ms(res.Took))
							b.Logf("run %d: %d updates caught up via %s from %d neighbours in %.0f ms (%d records accepted that way, %d another way)",
								len(took), updates, via, res.Peers, ms(res.Took), res.Pulled, res.Other)
						}
						b.ReportMetric(median(took), "catchup-ms")
						b.ReportMetric(float64(updates)/(median(took)/1000), "records/s")
						b.Logf("median over %d runs: %.0f ms", len(took), median(took))
						b.Logf("rerun: go test -run '^$' -bench '%s$' -benchtime %dx -timeout 0 ./bench/sim/", benchPattern(b.Name()), len(took))
					})
				}
			})
		}
	}
}

// BenchmarkDHTPutGet times a put of a blinded entry record from one DHT
// node (lookup, store on the closest peers, confirmation that one holds
// it) and a get of it from another, at N = 100.
func BenchmarkDHTPutGet(b *testing.B) {
	for _, lat := range []time.Duration{0, 20 * time.Millisecond} {
		b.Run(fmt.Sprintf("n=100/lat=%dms", lat.Milliseconds()), func(b *testing.B) {
			ctx := context.Background()
			d, err := NewDHTNet(ctx, 100, lat, 100)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			org, err := directory.NewIdentity()
			if err != nil {
				b.Fatal(err)
			}
			var puts, gets []float64
			for b.Loop() {
				r, err := d.Fix.Entry(org, fmt.Sprintf("servicio-%d", len(puts)), 1, Token(len(puts)))
				if err != nil {
					b.Fatal(err)
				}
				put, get, err := d.PutGet(ctx, r)
				if err != nil {
					b.Fatal(err)
				}
				puts, gets = append(puts, ms(put)), append(gets, ms(get))
			}
			b.ReportMetric(median(puts), "put-p50-ms")
			b.ReportMetric(quantile(puts, 0.9), "put-p90-ms")
			b.ReportMetric(median(gets), "get-p50-ms")
			b.ReportMetric(quantile(gets, 0.9), "get-p90-ms")
			b.Logf("median over %d runs: put p50 %.1f ms, p90 %.1f ms; get p50 %.1f ms, p90 %.1f ms",
				len(puts), median(puts), quantile(puts, 0.9), median(gets), quantile(gets, 0.9))
			b.Logf("puts (ms, sorted): %s", sortedList(puts))
			b.Logf("gets (ms, sorted): %s", sortedList(gets))
			b.Logf("rerun: go test -run '^$' -bench '%s$' -benchtime %dx -timeout 0 ./bench/sim/", benchPattern(b.Name()), len(puts))
		})
	}
}

// BenchmarkDHTInviteFetch times a fresh reader holding only an invite
// fetching a 1,000-entry directory from a 100-node DHT, and the same
// reader walking the DHT again: it reads the manifests, and no slot whose
// record it holds.
func BenchmarkDHTInviteFetch(b *testing.B) {
	for _, lat := range []time.Duration{0, 20 * time.Millisecond} {
		b.Run(fmt.Sprintf("n=100/lat=%dms/entries=1000", lat.Milliseconds()), func(b *testing.B) {
			ctx := context.Background()
			d, err := NewDHTNet(ctx, 100, lat, 101)
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			if err := d.Populate(ctx, 10, 1000); err != nil {
				b.Fatal(err)
			}
			var took, again []float64
			for b.Loop() {
				t, t2, entries, err := d.InviteFetch(ctx)
				if err != nil {
					b.Fatal(err)
				}
				if entries != 1000 {
					b.Fatalf("the reader holds %d entries, want 1000", entries)
				}
				took, again = append(took, ms(t)), append(again, ms(t2))
				b.Logf("run %d: 1000 entries fetched in %.0f ms, walked again in %.0f ms", len(took), ms(t), ms(t2))
			}
			b.ReportMetric(median(took), "fetch-ms")
			b.ReportMetric(median(again), "again-ms")
			b.Logf("median over %d runs: %.0f ms, again %.0f ms", len(took), median(took), median(again))
			b.Logf("rerun: go test -run '^$' -bench '%s$' -benchtime %dx -timeout 0 ./bench/sim/", benchPattern(b.Name()), len(took))
		})
	}
}

func quantile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func sortedList(xs []float64) string {
	s := slices.Clone(xs)
	slices.Sort(s)
	var b strings.Builder
	for i, x := range s {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%.0f", x)
	}
	return b.String()
}

// medianInt is the median of xs.
func medianInt[T int | int64](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// BenchmarkRotation delivers a read-key rotation (issue 14) to a network
// of 30 nodes at 20 ms links, sealed to every node and to made-up
// recipients up to 100, 1,000 and 10,000: the time until every node holds
// the new key (target: under 5 s at 10,000) and until half of them do,
// counted from the first publish; how long the origin took to publish;
// the CPU time of all nodes meanwhile (less sensitive to the machine's
// load than the times); what the median node read meanwhile and how many pages it took by sync
// (gossip dropped them); the bytes of one copy of its records, and the
// sealing time on every core (BenchmarkNewEpoch in package directory
// times it on one).
func BenchmarkRotation(b *testing.B) {
	const nodes = 30
	var extra []directory.Recipient
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("recipients=%d/nodes=%d/lat=20ms", n, nodes), func(b *testing.B) {
			ctx := context.Background()
			nw, err := New(ctx, Config{N: nodes, Latency: 20 * time.Millisecond, Orgs: 1, Seed: uint64(n)})
			if err != nil {
				b.Fatal(err)
			}
			defer nw.Close()
			if err := nw.FirstEpoch(ctx); err != nil {
				b.Fatal(err)
			}
			var all, half, publish, cpu, seal, wire, inMiB, bySync []float64
			missed := 0
			number := uint64(2)
			for b.Loop() {
				b.StopTimer()
				rot, more, err := nw.PrepareRotation(number, n, extra)
				if err != nil {
					b.Fatal(err)
				}
				extra = more
				b.StartTimer()
				d, err := nw.DeliverRotation(ctx, nw.RandomNode(), number, rot, time.Minute)
				if err != nil && d.Held == nil {
					b.Fatal(err)
				}
				runMissed := d.Missed()
				if err != nil {
					// A miss is a result, reported as such (missed-nodes,
					// summed over the runs), like BenchmarkGossip's; the
					// next run starts from it.
					b.Log(err)
					missed += runMissed
				}
				// Times count from the first publish and the nodes are
				// watched meanwhile, so no node's time exceeds the
				// timeout: a node that missed counts as the timeout, a
				// lower bound that is at least every other node's time.
				sorted := make([]time.Duration, len(d.Held))
				for i, t := range d.Held {
					if t == 0 {
						t = time.Minute
					}
					sorted[i] = t
				}
				slices.Sort(sorted)
				last := sorted[len(sorted)-1]
				all = append(all, ms(last))
				half = append(half, ms(sorted[len(sorted)/2]))
				publish = append(publish, ms(d.Publish))
				cpu = append(cpu, ms(d.CPU))
				seal = append(seal, ms(rot.Seal))
				wire = append(wire, float64(rot.WireBytes)/1024)
				inMiB = append(inMiB, float64(medianInt(d.BytesIn))/(1<<20))
				bySync = append(bySync, float64(medianInt(d.PagesSync)))
				every := last.Round(time.Millisecond).String()
				if runMissed > 0 {
					every = fmt.Sprintf("not within %v (%d missed)", time.Minute, runMissed)
				}
				b.Logf("%d recipients, %d pages, %.0f KiB: sealed in %v, published in %v; %v of CPU; half the nodes hold the key after %v, 90%% after %v, every node: %s; per node (median) %.1f MiB read, %d pages by gossip, %d by sync", rot.Recipients, rot.Pages, float64(rot.WireBytes)/1024, rot.Seal.Round(time.Millisecond), d.Publish.Round(time.Millisecond), d.CPU.Round(time.Millisecond),
					sorted[len(sorted)/2].Round(time.Millisecond), sorted[len(sorted)*9/10].Round(time.Millisecond), every,
					float64(medianInt(d.BytesIn))/(1<<20), medianInt(d.PagesGossip), medianInt(d.PagesSync))
				number++
			}
			b.ReportMetric(median(all), "all-hold-ms")
			b.ReportMetric(median(half), "half-hold-ms")
			b.ReportMetric(median(publish), "publish-ms")
			b.ReportMetric(median(cpu), "deliver-cpu-ms")
			b.ReportMetric(median(inMiB), "node-read-MiB")
			b.ReportMetric(median(bySync), "node-sync-pages")
			b.ReportMetric(median(seal), "seal-ms")
			b.ReportMetric(median(wire), "wire-KiB")
			b.ReportMetric(float64(missed), "missed-nodes")
			b.Logf("rerun: go test -run '^$' -bench '%s$' -benchtime %dx -timeout 0 ./bench/sim/", benchPattern(b.Name()), len(all))
		})
	}
}

// readerCases are the Readers topology's sizes: members, then readers
// linked only to members (issue 13).
var readerCases = []struct{ members, readers int }{{20, 100}, {50, 250}, {50, 1000}}

// BenchmarkReaders times an entry published on a random member's node until
// it is searchable on every node, readers included, in the Readers
// topology, with bare GossipSub on the same hosts and links as the
// baseline. After each run every node's search must find the entry.
func BenchmarkReaders(b *testing.B) {
	for _, c := range readerCases {
		const latency = 20 * time.Millisecond
		b.Run(fmt.Sprintf("members=%d/readers=%d/lat=%dms", c.members, c.readers, latency.Milliseconds()), func(b *testing.B) {
			ctx := context.Background()
			nw, err := New(ctx, Config{N: c.members + c.readers, Members: c.members, Latency: latency, Topology: Readers, Orgs: 1, Bare: true, Seed: uint64(c.members + c.readers)})
			if err != nil {
				b.Fatal(err)
			}
			defer nw.Close()
			timeout := 60*time.Second + 100*latency
			warmUp(b, nw, timeout)
			next := 1
			publishRuns(b, nw, nw.RandomMember, &next, timeout)
		})
	}
}
