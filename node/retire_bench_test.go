package node

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// BenchmarkPastRotationsHeap gives a steward's node four rotations of
// 10,000 recipients one after another, as a string of revocations would,
// and reports the live Go heap and the process's resident memory after
// the first and the fourth: with the pages of past rotations kept on disk
// only (retire=on, what the node does) and, for comparison, kept in
// memory (retire=off, the node before; its state given no loader). What
// grows per rotation is what every node of a network pays for each. The
// resident memory is read once Go has handed back what it freed
// (debug.FreeOSMemory), as the daemon's memory limit makes it do
// (node/daemon/memory.go); without that it follows the collector's
// timing more than what the node keeps.
//
//	go test -run '^$' -bench 'PastRotationsHeap' -benchtime 1x -timeout 0 ./node/
func BenchmarkPastRotationsHeap(b *testing.B) {
	const recipients, rotations = 10_000, 4
	nw := dirtest.New(b, 3, 2)
	rs := nw.Recipients(b, recipients-len(nw.Stewards))
	// Each rotation is made when it is published, and the node takes its
	// own copies, as from the wire: nothing else keeps a page alive.
	rotation := func(number uint64) []*directory.Record {
		e, pages := nw.Rotation(b, number, 1, directory.Hash{}, directory.NewReadKey(), rs, nw.Stewards[:2]...)
		out := []*directory.Record{e}
		for _, p := range pages {
			r, err := directory.DecodeRecord(p.Encode())
			if err != nil {
				b.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	for _, retire := range []bool{true, false} {
		b.Run(fmt.Sprintf("retire=%s", map[bool]string{true: "on", false: "off"}[retire]), func(b *testing.B) {
			var first, last, firstRSS, lastRSS float64
			for b.Loop() {
				n := startNode(b, testConfig(b, nw, nw.Stewards[0], b.TempDir()))
				if !retire {
					n.state.SetRecordLoader(nil)
				}
				mustPublish(b, n, append([]*directory.Record{nw.Genesis, nw.FirstEpoch}, nw.FirstPages...)...)
				for i := range rotations {
					mustPublish(b, n, rotation(uint64(i+2))...)
					if retire {
						// The epoch moved before this rotation's pages were on
						// disk; the ones before it leave memory at once.
						deadline := time.Now().Add(30 * time.Second)
						for len(n.state.PagesToRetire()) > 0 && time.Now().Before(deadline) {
							n.retirePages()
							time.Sleep(10 * time.Millisecond)
						}
					}
					// GossipSub keeps what the node published for its
					// gossip history (5 heartbeats of 1 s): measured after
					// it, what stays is what the node keeps.
					time.Sleep(6 * time.Second)
					heap, rss := liveHeapMiB(), residentMiB()
					b.Logf("retire=%v after rotation %d: live heap %.1f MiB, resident %.1f MiB, %d page records on disk only", retire, i+1, heap, rss, n.state.RetiredPages())
					if i == 0 {
						first, firstRSS = heap, rss
					}
					last, lastRSS = heap, rss
				}
				n.Close()
			}
			b.ReportMetric(first, "heap-after-1-MiB")
			b.ReportMetric(last, "heap-after-4-MiB")
			b.ReportMetric((last-first)/(rotations-1), "heap-per-rotation-MiB")
			b.ReportMetric((lastRSS-firstRSS)/(rotations-1), "rss-per-rotation-MiB")
		})
	}
}

// liveHeapMiB is the Go heap still reachable, after two collections and
// handing back to the system what they freed.
func liveHeapMiB() float64 {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc) / (1 << 20)
}

// residentMiB is this process's resident memory (VmRSS), 0 where /proc
// does not say.
func residentMiB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}
