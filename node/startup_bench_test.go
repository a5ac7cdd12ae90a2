//go:build unix

package node

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/ipfs/go-datastore"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// BenchmarkStartup times New on a pebble store of n entries (100
// organizations publishing n/100 each), twice per run: without a start-up
// checkpoint (every signature checked, as every start did before
// checkpoint.go, and as a start still does when the checkpoint is missing
// or damaged) and with the one the previous Close wrote. It also reports
// the Go heap the node started with the checkpoint keeps live (after two
// collections): the state, the index and the rest of the node, without
// what Go has not handed back to the system, which the daemon's resident
// memory adds (bench/daemonrss).
//
//	go test -run '^$' -bench 'Startup' -benchtime 3x -timeout 0 ./node/
func BenchmarkStartup(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			nw := dirtest.New(b, 1, 1)
			dir := b.TempDir()
			fillStore(b, nw, dir, n)
			cfg := testConfig(b, nw, nw.Stewards[0], dir)
			var full, ckpt, fullCPU, ckptCPU []time.Duration
			var heap []float64
			for b.Loop() {
				w, c, _ := timedStart(b, cfg, true)
				full, fullCPU = append(full, w), append(fullCPU, c)
				w, c, h := timedStart(b, cfg, false)
				ckpt, ckptCPU, heap = append(ckpt, w), append(ckptCPU, c), append(heap, h)
			}
			med := func(ds []time.Duration) float64 {
				slices.Sort(ds)
				return float64(ds[len(ds)/2].Milliseconds())
			}
			b.ReportMetric(med(full), "full-verify-ms")
			b.ReportMetric(med(fullCPU), "full-verify-cpu-ms")
			b.ReportMetric(med(ckpt), "checkpoint-ms")
			b.ReportMetric(med(ckptCPU), "checkpoint-cpu-ms")
			slices.Sort(heap)
			b.ReportMetric(heap[len(heap)/2], "live-heap-MiB")
			if fi, err := os.Stat(filepath.Join(cfg.DataDir, indexSnapshotFile)); err == nil {
				b.ReportMetric(float64(fi.Size())/(1<<20), "index-snapshot-MiB")
			}
			b.ReportMetric(storedSizeMiB(b, cfg, checkpointKey), "checkpoint-MiB")
			b.Logf("median over %d runs", len(full))
			b.Logf("rerun: go test -run '^$' -bench 'Startup/entries=%d$' -benchtime %dx -timeout 0 ./node/", n, len(full))
		})
	}
}

// timedStart starts a node on cfg's store and closes it (which writes a
// checkpoint), dropping the checkpoint first if drop is set. It returns
// the wall time of New and the process's CPU time meanwhile (on a shared
// machine the wall time depends on the load, the CPU time much less), and
// the live heap in MiB once the node is started. A start after a drop
// still restores the index from its snapshot (indexsnap.go): only the
// checkpoint is dropped.
func timedStart(b *testing.B, cfg Config, drop bool) (wall, cpu time.Duration, heapMiB float64) {
	ctx := context.Background()
	if drop {
		ds, _, err := openStore(cfg.DataDir, testLogger(b), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		ds.Delete(ctx, checkpointKey)
		ds.Close()
	}
	runtime.GC()
	t0, c0 := time.Now(), cpuTime()
	nd, err := New(ctx, cfg)
	took, cpu := time.Since(t0), cpuTime()-c0
	if err != nil {
		b.Fatal(err)
	}
	if got := len(nd.stored); got < 100 {
		b.Fatalf("the node holds %d records", got)
	}
	heapMiB = liveHeapMiB()
	b.Logf("start with%s checkpoint: %d records, %d taken on its word, %v (CPU %v), live heap %.0f MiB", map[bool]string{true: "out", false: ""}[drop], len(nd.stored), nd.ckpt.vouched, took.Round(time.Millisecond), cpu.Round(time.Millisecond), heapMiB)
	nd.Close()
	return took, cpu, heapMiB
}

// storedSizeMiB is the size of what the store under cfg holds at key.
func storedSizeMiB(b *testing.B, cfg Config, key datastore.Key) float64 {
	ds, _, err := openStore(cfg.DataDir, testLogger(b), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close()
	n, err := ds.GetSize(context.Background(), key)
	if err != nil {
		b.Fatalf("%s: %v", key, err)
	}
	return float64(n) / (1 << 20)
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fillStore writes n entries of 100 organizations, and their admissions,
// into the pebble store under dir, sealed as a node stores them.
func fillStore(b testing.TB, nw *dirtest.Network, dir string, n int) {
	ctx := context.Background()
	ds, _, err := openStore(dir, testLogger(b), time.Now())
	if err != nil {
		b.Fatal(err)
	}
	defer ds.Close()
	st := newRecordStore(ds)
	put := func(rs ...*directory.Record) {
		if err := st.putMany(ctx, sealedUnderEpoch1(nw, rs)); err != nil {
			b.Fatal(err)
		}
	}
	put(nw.Genesis)
	const orgs = 100
	for o := range orgs {
		org := dirtest.MustIdentity(b)
		recs := []*directory.Record{nw.Admit(b, org, fmt.Sprintf("Org %d", o))}
		for i := range n / orgs {
			e := dirtest.SampleEntry(fmt.Sprintf("s-%d", i), 1, nw.Now)
			e.Service.Description += fmt.Sprintf(" Servicio %d de la organización %d.", i, o)
			recs = append(recs, nw.Sign(b, e, org))
		}
		put(recs...)
	}
}
