package directory_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
)

// BenchmarkNewEpoch times sealing one rotation (issue 14): the read key
// HPKE-sealed to n recipients plus the padding dummies, cut into pages.
// Run with -cpu 1 it uses one core; cpu-ms is the CPU time it took, which
// stays meaningful on a shared machine where wall time does not. The
// target is 10,000 recipients in under 10 s of one core. wire-KiB is what one copy of the rotation's records
// weighs sealed (the epoch record and every page).
//
//	go test -run '^$' -bench '^BenchmarkNewEpoch$' -cpu 1 -count 3 ./directory/
func BenchmarkNewEpoch(b *testing.B) {
	nw := dirtest.New(b, 3, 2)
	var rs []directory.Recipient
	for _, n := range []int{100, 1000, 10000} {
		for len(rs) < n {
			id, err := directory.NewIdentity()
			if err != nil {
				b.Fatal(err)
			}
			rs = append(rs, directory.Recipient{Key: id.Public(), KEM: id.KEMPublic()})
		}
		b.Run(fmt.Sprintf("recipients=%d", n), func(b *testing.B) {
			var e *directory.Epoch
			var pages []*directory.EpochPage
			cpu0 := processCPU()
			for b.Loop() {
				var err error
				e, pages, err = directory.NewEpoch(nw.ID, 2, 1, directory.Hash{}, directory.NewReadKey(), rs[:n], nw.Now, directory.DefaultMaxRecordBytes)
				if err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			cpu := (processCPU() - cpu0) / time.Duration(b.N)
			wire := len(directory.Seal(nw.Sign(b, e, nw.Stewards[0]), nw.Key))
			for _, p := range pages {
				wire += len(directory.Seal(nw.Sign(b, p, nw.Stewards[0]), nw.Key))
			}
			per := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(per)/float64(time.Millisecond), "seal-ms")
			b.ReportMetric(float64(cpu)/float64(time.Millisecond), "cpu-ms")
			b.ReportMetric(float64(wire)/1024, "wire-KiB")
			b.ReportMetric(float64(len(pages)), "pages")
			packages := 0
			for _, p := range pages {
				packages += len(p.Packages)
			}
			b.ReportMetric(float64(packages), "packages")
			b.Logf("%d recipients: %d packages in %d pages, %.0f KiB sealed, %v to seal (%v of CPU)", n, directory.PaddedPackages(n), len(pages), float64(wire)/1024, per.Round(time.Millisecond), cpu.Round(time.Millisecond))
		})
	}
}
