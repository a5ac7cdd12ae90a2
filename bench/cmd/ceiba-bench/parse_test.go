package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const sample = `# started 2026-11-26T06:00:00Z
# step ingest: go test -run '^$' -bench '^(BenchmarkIngest|BenchmarkEd25519Verify)$' -cpu 1 -count 2 ./directory/
# load before ingest: 0.50 0.40 0.30
goos: linux
pkg: github.com/ceiba-network/ceiba/directory
BenchmarkIngest/verify=once         	   20000	     60000 ns/op	     16000 records/s
BenchmarkIngest/verify=once         	   20000	     50000 ns/op	     20000 records/s
BenchmarkEd25519Verify              	   30000	     40000 ns/op	     25000 verifies/s
BenchmarkEd25519Verify              	   30000	     40000 ns/op	     25000 verifies/s
# load after ingest: 0.90 0.50 0.30 (step took 10s)
# step gossip: go test -run '^$' -bench '^BenchmarkGossip$/^n=(10|100)$' -benchtime 5x -timeout 0 ./bench/sim/
pkg: github.com/ceiba-network/ceiba/bench/sim
BenchmarkGossip/n=10/lat=0ms/sparse/loss=0%/publish-2 	       5	   1000 ns/op	 0.5 bare-p100-ms	 0.4 bare-p50-ms	 0.5 bare-p99-ms	 569 bytes	 0.9 ceiba-p100-ms	 0.6 ceiba-p50-ms	 0.9 ceiba-p99-ms	 0 missed-nodes	 1.8 ratio-p100	 1.5 ratio-p50	 1.8 ratio-p99
--- BENCH: BenchmarkGossip/n=10/lat=0ms/sparse/loss=0%/publish-2
    bench_test.go:168: run 1: searchable ...
    bench_test.go:178: median over 5 runs: searchable on 99% after 0.90 ms
    bench_test.go:180: rerun: go test -run '^$' -bench '^BenchmarkGossip$/^n=10$' -benchtime 5x -timeout 0 ./bench/sim/
BenchmarkGossip/n=1000/lat=20ms/sparse/loss=0%/revoke-2 	       3	   1000 ns/op	 400 bare-p100-ms	 200 bare-p50-ms	 390 bare-p99-ms	 569 bytes	 900 ceiba-p100-ms	 300 ceiba-p50-ms	 880 ceiba-p99-ms	 0 missed-nodes	 2.2 ratio-p100	 1.5 ratio-p50	 2.25 ratio-p99
BenchmarkGossip/n=1000/lat=20ms/sparse/loss=0%/revoke-cosigned-2 	       3	   1000 ns/op	 400 bare-p100-ms	 200 bare-p50-ms	 390 bare-p99-ms	 569 bytes	 1100 ceiba-p100-ms	 300 ceiba-p50-ms	 1000 ceiba-p99-ms	 0 missed-nodes	 2.75 ratio-p100	 1.5 ratio-p50	 2.56 ratio-p99
--- FAIL: BenchmarkCatchUp/via=dht/updates=10000/neighbours=all
    bench_test.go:265: sim: node 9 holds 1 of 1000 records
--- FAIL: BenchmarkCatchUp
`

func TestParse(t *testing.T) {
	res, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	in := res.Find("BenchmarkIngest/verify=once")
	if in == nil || in.Runs != 2 || in.Step != "ingest" || in.Pkg != "github.com/ceiba-network/ceiba/directory" {
		t.Fatalf("ingest parsed as %+v", in)
	}
	if v, _ := in.Median("records/s"); v != 18000 {
		t.Fatalf("median records/s = %v, want 18000", v)
	}
	g := res.Find("BenchmarkGossip/n=10/lat=0ms/sparse/loss=0%/publish")
	if g == nil || g.Procs != 2 || !strings.HasPrefix(g.Rerun, "go test") || runsOf(g) != 5 {
		t.Fatalf("gossip parsed as %+v", g)
	}
	if v, _ := g.Median("ratio-p99"); v != 1.8 {
		t.Fatalf("ratio-p99 = %v", v)
	}
	if f := res.Find("BenchmarkCatchUp/via=dht/updates=10000/neighbours=all"); f == nil || !f.Failed || len(f.Log) != 1 {
		t.Fatalf("failure parsed as %+v", f)
	}
	rows := gossipRows(res)
	if len(rows) != 3 || rows[0].kind != "publish" || rows[1].kind != "revoke" || rows[1].n != 1000 || rows[1].latency != 20 || rows[2].kind != "revoke-cosigned" {
		t.Fatalf("gossip rows %+v", rows)
	}
	ts := gossipTargets(rows)
	// The 1 s target is the revocation as stewards make it, not the
	// cosigned record's 1,100 ms.
	if last := ts[len(ts)-1]; last.met == nil || !*last.met || last.measured != "900 ms" {
		t.Fatalf("revocation target %+v", last)
	}
	var cosigned []target
	for _, t := range ts {
		if strings.Contains(t.what, "quorum's signatures") {
			cosigned = append(cosigned, t)
		}
	}
	if len(cosigned) != 2 || cosigned[0].measured != "20 ms links: 2.56 at N = 1000" || cosigned[0].met == nil || *cosigned[0].met {
		t.Fatalf("cosigned revocation targets %+v", cosigned)
	}
	if cmd := rerunFromStep(in); !strings.Contains(cmd, `'^BenchmarkIngest$/^verify=once$'`) || !strings.Contains(cmd, "-cpu 1") {
		t.Fatalf("rerun command %q", cmd)
	}
}

// The report and its plots come out of the sample without error.
func TestReport(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "latest.txt")
	if err := os.WriteFile(in, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := report(in, dir); err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(filepath.Join(dir, "latest.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| 10 | 0 ms | sparse | 0% | 0.60 | 0.90 |", "72% (18,000 / 25,000 per s)", "**missed**", "ratio.png"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	for _, png := range []string{"propagation.png", "revocation.png", "revocation-cosigned.png", "ratio.png", "ingest.png"} {
		if _, err := os.Stat(filepath.Join(dir, png)); err != nil {
			t.Error(err)
		}
	}
}
