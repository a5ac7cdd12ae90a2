package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// params splits a benchmark name into its key=value levels and its plain
// levels (the first is the function name).
func params(name string) (map[string]string, []string) {
	kv := map[string]string{}
	var plain []string
	for _, part := range strings.Split(name, "/") {
		if k, v, ok := strings.Cut(part, "="); ok {
			kv[k] = v
		} else {
			plain = append(plain, part)
		}
	}
	return kv, plain
}

// gossipRow is one BenchmarkGossip result.
type gossipRow struct {
	n, latency int // latency in ms
	topo, kind string
	loss       string
	b          *Bench
}

func gossipRows(r *Results) []gossipRow {
	var rows []gossipRow
	for _, name := range r.Order {
		if !strings.HasPrefix(name, "BenchmarkGossip/") {
			continue
		}
		b := r.ByName[name]
		kv, plain := params(name)
		if len(plain) < 3 || b.Runs == 0 && !b.Failed {
			continue
		}
		n, _ := strconv.Atoi(kv["n"])
		lat, _ := strconv.Atoi(strings.TrimSuffix(kv["lat"], "ms"))
		rows = append(rows, gossipRow{n: n, latency: lat, topo: plain[1], kind: plain[len(plain)-1], loss: kv["loss"], b: b})
	}
	slices.SortStableFunc(rows, func(a, b gossipRow) int {
		if c := strings.Compare(a.kind, b.kind); c != 0 {
			return c // publish before revoke
		}
		if a.loss != b.loss {
			return strings.Compare(a.loss, b.loss)
		}
		if a.topo != b.topo {
			return -strings.Compare(a.topo, b.topo) // sparse before dense
		}
		if a.n != b.n {
			return a.n - b.n
		}
		return a.latency - b.latency
	})
	return rows
}

// target is one line of the summary.
type target struct {
	what, goal, measured string
	met                  *bool
}

func yes(b bool) *bool { return &b }

func verdict(t *bool) string {
	switch {
	case t == nil:
		return "not measured"
	case *t:
		return "met"
	}
	return "**missed**"
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case v == 0:
		return "0"
	case math.Abs(v) < 10:
		return strconv.FormatFloat(v, 'f', 2, 64)
	case math.Abs(v) < 100:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 0, 64)
}

// thousands writes large rates readably: 12,345.
func thousands(v float64) string {
	s := strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	var out []byte
	for i := range s {
		if i > 0 && (len(s)-i)%3 == 0 && s[i-1] != '-' {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

func med(b *Bench, unit string) float64 {
	if b == nil {
		return math.NaN()
	}
	v, ok := b.Median(unit)
	if !ok {
		return math.NaN()
	}
	return v
}

func report(in, out string) error {
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	res, err := Parse(f)
	f.Close()
	if err != nil {
		return err
	}
	if len(res.Order) == 0 {
		return fmt.Errorf("%s: %w", in, errNoResults)
	}
	var md strings.Builder
	w := func(format string, a ...any) { fmt.Fprintf(&md, format, a...) }
	w("# Ceiba benchmark results\n\n")
	w("Written by `go run ./bench/cmd/ceiba-bench report` from `%s`. The method, and what each number\n", filepath.Base(in))
	w("means, is in [docs/PERFORMANCE.md](../../docs/PERFORMANCE.md). Every figure is a median: over the\n")
	w("`-count` repeats for the micro-benchmarks, over the runs (iterations) for the network ones.\n\n")
	writeRunInfo(&md, res)

	var targets []target
	rows := gossipRows(res)
	targets = append(targets, gossipTargets(rows)...)
	targets = append(targets, otherTargets(res)...)
	targets = append(targets, churnTargets(res)...)
	w("## Targets\n\n| measure | target | measured | |\n|---|---|---|---|\n")
	for _, t := range targets {
		w("| %s | %s | %s | %s |\n", t.what, t.goal, t.measured, verdict(t.met))
	}
	w("\n![Ceiba / bare GossipSub](ratio.png)\n\n")

	writeGossip(&md, rows, "publish", "Propagation: publish → searchable", "propagation.png")
	writeGossip(&md, rows, "revoke", "Revocation: the approval completing the stewards' quorum → enforced (key refused, its entries gone from search)", "revocation.png")
	writeGossip(&md, rows, "revoke-cosigned", "Revocation as one record carrying the quorum's signatures → enforced", "revocation-cosigned.png")
	writeCatchUp(&md, res)
	writeDHT(&md, res)
	writeIngest(&md, res)
	writeGovernance(&md, res)
	writeChurn(&md, res)
	writeReaders(&md, res)
	writeSearch(&md, res)
	writeRotation(&md, res)
	writeMemory(&md, res)
	writeFailures(&md, res)

	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	if err := plots(res, rows, out); err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	return os.WriteFile(filepath.Join(out, "latest.md"), []byte(md.String()), 0o644)
}

func writeRunInfo(md *strings.Builder, res *Results) {
	w := func(format string, a ...any) { fmt.Fprintf(md, format, a...) }
	var steps [][3]string
	for _, h := range res.Headers {
		h = strings.TrimPrefix(h, "# ")
		switch {
		case strings.HasPrefix(h, "started "), strings.HasPrefix(h, "machine "), strings.HasPrefix(h, "commit "),
			strings.HasPrefix(h, "finished "), strings.HasPrefix(h, "quick"):
			w("- %s\n", h)
		case strings.HasPrefix(h, "load before "):
			name, load, _ := strings.Cut(strings.TrimPrefix(h, "load before "), ": ")
			steps = append(steps, [3]string{name, load, ""})
		case strings.HasPrefix(h, "load after "):
			_, rest, _ := strings.Cut(strings.TrimPrefix(h, "load after "), ": ")
			if len(steps) > 0 {
				steps[len(steps)-1][2] = rest
			}
		case strings.Contains(h, " failed: "):
			w("- %s\n", h)
		}
	}
	if len(steps) > 0 {
		w("\nLoad average (1, 5, 15 min) of the shared machine around each step:\n\n| step | before | after | took |\n|---|---|---|---:|\n")
		for _, s := range steps {
			after, took, _ := strings.Cut(s[2], " (step took ")
			w("| %s | %s | %s | %s |\n", s[0], s[1], after, strings.TrimSuffix(took, ")"))
		}
	}
	w("\n")
}

func gossipTargets(rows []gossipRow) []target {
	var ts []target
	for _, kind := range []string{"publish", "revoke", "revoke-cosigned"} {
		what := map[string]string{
			"publish":         "publish → searchable",
			"revoke":          "revocation enforced (from the approval completing the quorum)",
			"revoke-cosigned": "revocation enforced (one record carrying the quorum's signatures)",
		}[kind]
		for _, q := range []string{"p99", "p100"} {
			t := target{what: fmt.Sprintf("%s, Ceiba / bare GossipSub, time to %s of nodes (sparse, no loss)", what, strings.TrimPrefix(q, "p")+"%"), goal: "≤ 1.25 at every N"}
			var parts []string
			worst, found := 0.0, false
			for _, lat := range []int{20, 0} {
				var ns, vs []string
				for _, r := range rows {
					if r.kind != kind || r.latency != lat || r.topo != "sparse" || r.loss != "0%" {
						continue
					}
					v := med(r.b, "ratio-"+q)
					if math.IsNaN(v) {
						continue
					}
					found, worst = true, max(worst, v)
					ns, vs = append(ns, strconv.Itoa(r.n)), append(vs, num(v))
				}
				if len(vs) > 0 {
					parts = append(parts, fmt.Sprintf("%d ms links: %s at N = %s", lat, strings.Join(vs, " / "), strings.Join(ns, " / ")))
				}
			}
			if found {
				t.measured = strings.Join(parts, "; ")
				t.met = yes(worst <= 1.25)
			}
			ts = append(ts, t)
		}
	}
	t := target{what: "revocation enforced on 100% of 1,000 nodes, 20 ms links", goal: "< 1 s"}
	for _, r := range rows {
		if r.kind == "revoke" && r.n == 1000 && r.latency == 20 && r.topo == "sparse" && r.loss == "0%" {
			if v := med(r.b, "ceiba-p100-ms"); !math.IsNaN(v) {
				t.measured = num(v) + " ms"
				t.met = yes(v < 1000 && med(r.b, "missed-nodes") == 0)
			}
		}
	}
	return append(ts, t)
}

func otherTargets(res *Results) []target {
	var ts []target
	t := target{what: "catch-up of 10,000 updates via sync", goal: "< 2 s"}
	if v := med(res.Find("BenchmarkCatchUp/via=sync/updates=10000/neighbours=all"), "catchup-ms"); !math.IsNaN(v) {
		t.measured, t.met = num(v)+" ms", yes(v < 2000)
	}
	ts = append(ts, t)
	ingest, verify := med(res.Find("BenchmarkIngest/verify=once"), "records/s"), med(res.Find("BenchmarkEd25519Verify"), "verifies/s")
	t = target{what: "records validated and applied per second, one core, against raw Ed25519 verifications", goal: "≥ 50%"}
	if !math.IsNaN(ingest) && !math.IsNaN(verify) {
		t.measured = fmt.Sprintf("%.0f%% (%s / %s per s)", 100*ingest/verify, thousands(ingest), thousands(verify))
		t.met = yes(ingest/verify >= 0.5)
	}
	ts = append(ts, t)
	t = target{what: "daemon resident memory after start, invite accept and idle (empty directory)", goal: "< 80 MiB"}
	if b := res.Find("BenchmarkDaemonLifecycleRSS"); b != nil {
		v := max(med(b, "started-MiB"), med(b, "accepted-MiB"), med(b, "idle-MiB"))
		t.measured, t.met = num(v)+" MiB", yes(v < 80)
	}
	ts = append(ts, t)
	t = target{what: "daemon start-up to API with every entry, 100,000 entries", goal: "< 1 s"}
	if v := med(res.Find("BenchmarkDaemonRSS/entries=100000"), "startup-ms"); !math.IsNaN(v) {
		t.measured, t.met = num(v/1000)+" s", yes(v < 1000)
	}
	ts = append(ts, t)
	t = target{what: "node start with the start-up checkpoint, 100,000 entries (in process)", goal: "< 1 s"}
	if v := med(res.Find("BenchmarkStartup/entries=100000"), "checkpoint-ms"); !math.IsNaN(v) {
		t.measured, t.met = num(v/1000)+" s", yes(v < 1000)
	}
	ts = append(ts, t)
	t = target{what: "daemon resident memory after a restart, 100,000 entries", goal: "< 250 MiB"}
	if v := med(res.Find("BenchmarkDaemonRSS/entries=100000"), "rss-MiB"); !math.IsNaN(v) {
		t.measured, t.met = num(v)+" MiB", yes(v < 250)
	}
	ts = append(ts, t)
	t = target{what: "rotation to 10,000 recipients sealed, one core", goal: "< 10 s of CPU"}
	if v := med(res.Find("BenchmarkNewEpoch/recipients=10000"), "cpu-ms"); !math.IsNaN(v) {
		t.measured, t.met = num(v/1000)+" s", yes(v < 10000)
	}
	ts = append(ts, t)
	t = target{what: "rotation to 10,000 recipients: every simulated node holds the key, 20 ms links", goal: "< 5 s"}
	if b := res.Find("BenchmarkRotation/recipients=10000/nodes=30/lat=20ms"); b != nil {
		if v, missed := med(b, "all-hold-ms"), med(b, "missed-nodes"); !math.IsNaN(v) {
			t.measured, t.met = num(v/1000)+" s", yes(v < 5000 && missed == 0)
			if missed > 0 {
				t.measured = fmt.Sprintf("%s of 30 nodes missed within %s s (summed over the runs)", thousands(missed), num(v/1000))
			}
		}
	}
	ts = append(ts, t)
	t = target{what: "search p99 at 100,000 entries", goal: "< 5 ms"}
	if v := med(res.Find("BenchmarkSearch/n=100000"), "p99-µs"); !math.IsNaN(v) {
		t.measured, t.met = num(v/1000)+" ms", yes(v < 5000)
	}
	return append(ts, t)
}

func writeGossip(md *strings.Builder, rows []gossipRow, kind, title, png string) {
	w := func(format string, a ...any) { fmt.Fprintf(md, format, a...) }
	var mine []gossipRow
	for _, r := range rows {
		if r.kind == kind {
			mine = append(mine, r)
		}
	}
	if len(mine) == 0 {
		return
	}
	w("## %s\n\n", title)
	w("Milliseconds from the publish call until 50%%, 99%% and 100%% of the nodes had applied the record; \"bare\" is a\n")
	w("random message of the same sealed size on a plain GossipSub topic, from the same node, on the same hosts and links.\n")
	w("Ratio is the median over runs of Ceiba / bare, each run paired.\n\n")
	w("| N | link latency | topology | loss | Ceiba p50 | p99 | p100 | bare p50 | p99 | p100 | ratio p99 | ratio p100 | runs | missed nodes |\n")
	w("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range mine {
		if r.b.Failed && r.b.Runs == 0 {
			w("| %d | %d ms | %s | %s | failed: see below |||||||||\n", r.n, r.latency, r.topo, r.loss)
			continue
		}
		w("| %d | %d ms | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d | %s |\n", r.n, r.latency, r.topo, r.loss,
			num(med(r.b, "ceiba-p50-ms")), num(med(r.b, "ceiba-p99-ms")), num(med(r.b, "ceiba-p100-ms")),
			num(med(r.b, "bare-p50-ms")), num(med(r.b, "bare-p99-ms")), num(med(r.b, "bare-p100-ms")),
			num(med(r.b, "ratio-p99")), num(med(r.b, "ratio-p100")), runsOf(r.b), num(med(r.b, "missed-nodes")))
	}
	w("\n![%s](%s)\n\n", title, png)
	writeReruns(md, func(b *Bench) bool { return b != nil }, benches(mine))
}

func benches(rows []gossipRow) []*Bench {
	var out []*Bench
	for _, r := range rows {
		out = append(out, r.b)
	}
	return out
}

// runsOf is how many iterations the medians are over: what the benchmark
// said in its "median over N runs" log line, or its iteration count.
func runsOf(b *Bench) int {
	for _, l := range b.Log {
		var n int
		if _, err := fmt.Sscanf(l, "median over %d runs", &n); err == nil {
			return n
		}
		if i := strings.Index(l, "median over "); i >= 0 {
			if _, err := fmt.Sscanf(l[i:], "median over %d runs", &n); err == nil {
				return n
			}
		}
	}
	return b.Runs
}

func writeReruns(md *strings.Builder, keep func(*Bench) bool, bs []*Bench) {
	var cmds []string
	for _, b := range bs {
		if b == nil || !keep(b) {
			continue
		}
		cmd := b.Rerun
		if cmd == "" {
			cmd = rerunFromStep(b)
		}
		if cmd != "" && !slices.Contains(cmds, cmd) {
			cmds = append(cmds, cmd)
		}
	}
	if len(cmds) == 0 {
		return
	}
	fmt.Fprintf(md, "<details><summary>Commands to rerun these</summary>\n\n```sh\n%s\n```\n</details>\n\n", strings.Join(cmds, "\n"))
}

// rerunFromStep rebuilds a command for a benchmark that prints none: the
// step's go test line, narrowed to that benchmark.
func rerunFromStep(b *Bench) string {
	if b.Command == "" {
		return ""
	}
	f := strings.Fields(b.Command)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "-bench" {
			f[i+1] = "'" + pattern(b.Name) + "'"
		}
	}
	return strings.Join(f, " ")
}

// pattern anchors each level of a benchmark name for -bench.
func pattern(name string) string {
	parts := strings.Split(name, "/")
	for i, p := range parts {
		parts[i] = "^" + regexpQuote(p) + "$"
	}
	return strings.Join(parts, "/")
}

func regexpQuote(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`\.+*?()|[]{}^$`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func writeCatchUp(md *strings.Builder, res *Results) {
	var bs []*Bench
	for _, name := range res.Order {
		if strings.HasPrefix(name, "BenchmarkCatchUp/") && strings.Count(name, "/") == 3 {
			bs = append(bs, res.ByName[name])
		}
	}
	if len(bs) == 0 {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(md, format, a...) }
	w("## Catch-up after being offline\n\n")
	w("A node of a 10-node network is stopped while five organizations publish one new version of every entry, then\n")
	w("restarted on its own store and reconnected to its neighbours (all of them, as it would, or one). Milliseconds from\n")
	w("reconnecting until it holds every update and its digest equals the others'. The DHT runs fetch the directory every\n")
	w("second (the time includes waiting for that tick).\n\n")
	w("| updates | via | neighbours | time (ms) | records/s | runs |\n|---:|---|---|---:|---:|---:|\n")
	for _, b := range bs {
		kv, _ := params(b.Name)
		if b.Failed && b.Runs == 0 {
			w("| %s | %s | %s | failed: see below | | |\n", kv["updates"], kv["via"], kv["neighbours"])
			continue
		}
		w("| %s | %s | %s | %s | %s | %d |\n", kv["updates"], kv["via"], kv["neighbours"], num(med(b, "catchup-ms")), thousands(med(b, "records/s")), runsOf(b))
	}
	w("\n![catch-up](catchup.png)\n\n")
	writeReruns(md, func(*Bench) bool { return true }, bs)
}

// writeRotation is issue 14's table: per recipient count, the sealing
// (rotation-seal step, one core) and the delivery to every simulated node
// (rotation step).
func writeRotation(md *strings.Builder, res *Results) {
	seal, deliver := map[string]*Bench{}, map[string]*Bench{}
	var counts []string
	for _, name := range res.Order {
		var into map[string]*Bench
		switch {
		case strings.HasPrefix(name, "BenchmarkNewEpoch/"):
			into = seal
		case strings.HasPrefix(name, "BenchmarkRotation/"):
			into = deliver
		default:
			continue
		}
		kv, _ := params(name)
		n := kv["recipients"]
		if _, ok := seal[n]; !ok {
			if _, ok := deliver[n]; !ok {
				counts = append(counts, n)
			}
		}
		into[n] = res.ByName[name]
	}
	if len(counts) == 0 {
		return
	}
	slices.SortFunc(counts, func(a, b string) int {
		x, _ := strconv.Atoi(a)
		y, _ := strconv.Atoi(b)
		return x - y
	})
	w := func(format string, a ...any) { fmt.Fprintf(md, format, a...) }
	w("## Key rotation\n\n")
	w("Sealing a rotation's read key to every recipient (`directory.NewEpoch`, one core: CPU time, and wall time at\n")
	w("the machine's load) with its size, then delivering it on a network of 30 simulated nodes at 20 ms links: the\n")
	w("time from the first publish until every node holds the new key (recipients beyond the 30 nodes run no node).\n")
	w("Medians over the runs (the step's -benchtime); a delivery run that did not reach every node within its 60 s\n")
	w("timeout counts as 60 s, and its missed nodes are summed over the runs. Times count from the first publish,\n")
	w("with the nodes watched while the origin publishes; \"published in\" is how long the origin took to publish\n")
	w("every record, \"CPU\" the process's CPU time (all 30 nodes) until every node held the key, and \"read per node\"\n")
	w("what the median node's streams read meanwhile (gossip and sync).\n\n")
	w("| recipients | packages (padded) | pages | one copy on the wire | seal, CPU | seal, wall | every node holds the key | missed nodes | half the nodes | published in | CPU | read per node |\n")
	w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var bs []*Bench
	for _, n := range counts {
		s, d := seal[n], deliver[n]
		rec, _ := strconv.Atoi(n)
		row := []string{thousands(float64(rec)), "–", "–", "–", "–", "–", "–", "–", "–", "–", "–", "–"}
		if s != nil {
			bs = append(bs, s)
			if s.Failed && s.Runs == 0 {
				row[4] = "failed: see below"
			} else {
				row[1] = thousands(med(s, "packages"))
				row[2] = thousands(med(s, "pages"))
				row[3] = thousands(med(s, "wire-KiB")) + " KiB"
				row[4] = msOrS(med(s, "cpu-ms"))
				row[5] = msOrS(med(s, "seal-ms"))
			}
		}
		if d != nil {
			bs = append(bs, d)
			if d.Failed && d.Runs == 0 {
				row[6] = "failed: see below"
			} else {
				row[6] = num(med(d, "all-hold-ms")/1000) + " s"
				row[7] = thousands(med(d, "missed-nodes"))
				if v := med(d, "half-hold-ms"); !math.IsNaN(v) {
					row[8] = num(v/1000) + " s"
					row[9] = num(med(d, "publish-ms")/1000) + " s"
					row[10] = msOrS(med(d, "deliver-cpu-ms"))
					row[11] = num(med(d, "node-read-MiB")) + " MiB"
				}
			}
		}
		w("| %s |\n", strings.Join(row, " | "))
	}
	w("\n")
	writeReruns(md, func(*Bench) bool { return true }, bs)
}

// msOrS writes a duration given in milliseconds, in seconds from 1 s.
func msOrS(ms float64) string {
	if ms >= 1000 {
		return num(ms/1000) + " s"
	}
	return num(ms) + " ms"
}

func writeDHT(md *strings.Builder, res *Results) {
	var pg, inv []*Bench
	for _, name := range res.Order {
		switch {
		case strings.HasPrefix(name, "BenchmarkDHTPutGet/"):
			pg = append(pg, res.ByName[name])
		case strings.HasPrefix(name, "BenchmarkDHTInviteFetch/"):
			inv = append(inv, res.ByName[name])
		}
	}
	if len(pg)+len(inv) == 0 {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(md, format, a...) }
	w("## DHT\n\n")
	if len(pg) > 0 {
		w("Put of one blinded, sealed entry record from a random node of 100 (lookup, store on the closest peers,\n")
		w("confirmation that one holds it), then a get of it from another node. Milliseconds.\n\n")
		w("| N | link latency | put p50 | put p90 | get p50 | get p90 | runs |\n|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, b := range pg {
			kv, _ := params(b.Name)
			w("| %s | %s | %s | %s | %s | %s | %d |\n", kv["n"], kv["lat"], num(med(b, "put-p50-ms")), num(med(b, "put-p90-ms")),
				num(med(b, "get-p50-ms")), num(med(b, "get-p90-ms")), runsOf(b))
		}
		w("\n")
	}
	if len(inv) > 0 {
		w("A fresh reader holding only an invite (network ID, read key, steward keys, one bootstrap peer) fetches a\n")
		w("1,000-entry directory of 10 organizations from a 100-node DHT: charter, manifests, every slot. Then it\n")
		w("walks the DHT again, as a node cut off from its peers does every 10 minutes: the manifests, and only the\n")
		w("slots whose listed record it lacks (none here).\n\n")
		w("| N | link latency | entries | time (ms) | again (ms) | runs |\n|---:|---:|---:|---:|---:|---:|\n")
		for _, b := range inv {
			kv, _ := params(b.Name)
			w("| %s | %s | %s | %s | %s | %d |\n", kv["n"], kv["lat"], kv["entries"], num(med(b, "fetch-ms")), num(med(b, "again-ms")), runsOf(b))
		}
		w("\n")
	}
	writeReruns(md, func(*Bench) bool { return true }, append(pg, inv...))
}

func writeIngest(md *strings.Builder, res *Results) {
	names := []string{"BenchmarkIngest/verify=once", "BenchmarkIngest/verify=twice", "BenchmarkOpenVerify", "BenchmarkApplyEntry/entries=1000", "BenchmarkApplyEntry/entries=10000", "BenchmarkSealSign", "BenchmarkEd25519Verify"}
	var bs []*Bench
	for _, n := range names {
		if b := res.Find(n); b != nil {
			bs = append(bs, b)
		}
	}
	if len(bs) == 0 {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(md, format, a...) }
	w("## Ingest, one core\n\n")
	w("GOMAXPROCS=1, one process. Ingest is the whole receive path of one entry update: open the seal, decode, verify,\n")
	w("validate against a state of 1,000 entries, apply, index. The rest break it down.\n\n")
	w("| benchmark | per second | µs each | allocs/op | runs |\n|---|---:|---:|---:|---:|\n")
	for _, b := range bs {
		rate := med(b, "records/s")
		if math.IsNaN(rate) {
			rate = med(b, "verifies/s")
		}
		w("| %s | %s | %s | %s | %d |\n", strings.TrimPrefix(b.Name, "Benchmark"), thousands(rate), num(med(b, "ns/op")/1000), num(med(b, "allocs/op")), b.Runs)
	}
	w("\n![ingest](ingest.png)\n\n")
	writeReruns(md, func(*Bench) bool { return true }, bs)
}

func writeGovernance(md *strings.Builder, res *Results) {
	b := res.Find("BenchmarkApplyGovernanceWithJunk")
	if b == nil {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(md, format, a...) }
	w("## Governance under junk\n\n")
	w("One membership applied to a state of 50 members, 10,000 reader grants (1,000 of them self-revoked) and the full quota of\n")
	w("junk that keys not admitted can leave (4,096 pending entries, 256 proposals waiting for a charter); records arrive\n")
	w("verified, as Open hands them over. Target: under 1 ms.\n\n")
	w("| benchmark | µs each | B/op | allocs/op | runs | target |\n|---|---:|---:|---:|---:|---|\n")
	us := med(b, "ns/op") / 1000
	met := us < 1000
	w("| %s | %s | %s | %s | %d | %s |\n\n", strings.TrimPrefix(b.Name, "Benchmark"), num(us), thousands(med(b, "B/op")), num(med(b, "allocs/op")), b.Runs, verdict(&met))
}

// churnTargets are issue 21's: with one member churning at its limit on
// 100 nodes, a revocation's time to every node, and every node's CPU and
// bytes per second, within 1.25× of the quiet network.
func churnTargets(res *Results) []target {
	b := res.Find("BenchmarkChurn")
	var ts []target
	for _, m := range []struct{ what, quiet, churn, ratio, unit string }{
		{"revocation on the 99 nodes other than the churner's while one member churns at its limit (100 nodes), against quiet", "quiet-p100-ms", "churn-p100-ms", "ratio-churn", " ms"},
		{"CPU per node, the churner's own node left out, while one member churns at its limit (100 nodes), against quiet", "quiet-cpu-%-per-other-node", "churn-cpu-%-per-other-node", "ratio-cpu-others", "%"},
		{"bytes read per node per second while one member churns at its limit (100 nodes), against quiet", "quiet-B/s-per-node", "churn-B/s-per-node", "ratio-bytes", " B/s"},
	} {
		t := target{what: m.what, goal: "≤ 1.25×"}
		if r := med(b, m.ratio); !math.IsNaN(r) {
			t.measured = fmt.Sprintf("×%s (%s%s against %s%s)", num(r), num(med(b, m.churn)), m.unit, num(med(b, m.quiet)), m.unit)
			t.met = yes(r <= 1.25)
		}
		ts = append(ts, t)
	}
	return ts
}

func writeChurn(md *strings.Builder, res *Results) {
	b := res.Find("BenchmarkChurn")
	if b == nil {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(md, format, a...) }
	w("## One member churning at its limit\n\n")
	w("100 nodes, sparse, 20 ms links, no DHT. One organization's node imports a new ~14 KB version of one entry ten\n")
	w("times a second, far past the charter's update rate (60 an hour, a burst of 3), which every other node enforces\n")
	w("when it forwards. Quiet: a 10 s window on the quiet network with two revocations in it. Churn: a 10 s window\n")
	w("from 20 s into the churn, when nodes let through only the hourly rate, with two revocations. Revocation times\n")
	w("are medians over every revocation of every run; CPU is the process's CPU time divided by the nodes (one process\n")
	w("runs them all); the target is on the other nodes' CPU: the process's CPU less the share of a CPU profile's samples\n")
	w("taken in the churning node's goroutines (the attacker's own node; unlabelled samples such as the garbage collector's\n")
	w("stay with the others), over 99 nodes. Bytes are what each node's streams read (gossip, sync), median and largest over nodes. The burst\n")
	w("row is one revocation 3 s into the churn, while the allowed burst of versions spreads (first run only: the\n")
	w("buckets do not refill within a run); it has no target. Target: every ratio within 1.25.\n\n")
	w("| measure | quiet | churn | ratio | target |\n|---|---:|---:|---:|---|\n")
	row := func(what, quiet, churn, ratio string, goal bool) {
		r := med(b, ratio)
		v := "–"
		if goal && !math.IsNaN(r) {
			v = verdict(yes(r <= 1.25))
		}
		w("| %s | %s | %s | ×%s | %s |\n", what, num(med(b, quiet)), num(med(b, churn)), num(r), v)
	}
	row("revocation to 100% of nodes (ms)", "quiet-p100-ms", "churn-p100-ms", "ratio-churn", true)
	row("revocation to 100% of nodes during the burst (ms)", "quiet-p100-ms", "burst-p100-ms", "ratio-burst", false)
	w("| revocation to 50%% of nodes (ms) | %s | %s | ×%s | – |\n", num(med(b, "quiet-p50-ms")), num(med(b, "churn-p50-ms")),
		num(med(b, "churn-p50-ms")/med(b, "quiet-p50-ms")))
	row("CPU per node, the churner's own node left out (%)", "quiet-cpu-%-per-other-node", "churn-cpu-%-per-other-node", "ratio-cpu-others", true)
	row("CPU per node, all 100 (%)", "quiet-cpu-%-per-node", "churn-cpu-%-per-node", "ratio-cpu", false)
	row("bytes read per node (B/s, median node)", "quiet-B/s-per-node", "churn-B/s-per-node", "ratio-bytes", true)
	w("| bytes read per node (B/s, busiest node) | %s | %s | ×%s | – |\n", num(med(b, "quiet-max-B/s-node")), num(med(b, "churn-max-B/s-node")),
		num(med(b, "churn-max-B/s-node")/med(b, "quiet-max-B/s-node")))
	w("\nEntry versions each node applied by gossip during the churn: %s per second (%s B/s of entries); %d runs.\n\n",
		num(med(b, "churn-versions/s-per-node")), num(med(b, "churn-entry-B/s-per-node")), runsOf(b))
	writeReruns(md, func(*Bench) bool { return true }, []*Bench{b})
}

// writeReaders is BenchmarkReaders: members linked among themselves and
// readers linked only to members (issue 13).
func writeReaders(md *strings.Builder, res *Results) {
	var bs []*Bench
	for _, name := range res.Order {
		if b := res.ByName[name]; strings.HasPrefix(name, "BenchmarkReaders/") && (b.Runs > 0 || b.Failed) {
			bs = append(bs, b)
		}
	}
	if len(bs) == 0 {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(md, format, a...) }
	w("## Readers linked only to members\n\n")
	w("Member nodes in the sparse topology among themselves; every reader's node linked to 3 random members and\n")
	w("to no other reader, as a reader's node connects. An entry published on a random member's node, timed until\n")
	w("it is searchable on each node, readers included; after each run every node's search must find it. Bare:\n")
	w("a random message of the same sealed size on a plain GossipSub topic, from the same node, on the same links.\n\n")
	w("| members | readers | latency | Ceiba p50 / p99 / p100 (ms) | bare p50 / p99 / p100 (ms) | ratio p100 | nodes missed | runs |\n|---:|---:|---:|---|---|---:|---:|---:|\n")
	for _, b := range bs {
		kv, _ := params(b.Name)
		if b.Failed && b.Runs == 0 {
			w("| %s | %s | %s | failed | | | | 0 |\n", kv["members"], kv["readers"], kv["lat"])
			continue
		}
		w("| %s | %s | %s | %s / %s / %s | %s / %s / %s | ×%s | %s | %d |\n", kv["members"], kv["readers"], kv["lat"],
			num(med(b, "ceiba-p50-ms")), num(med(b, "ceiba-p99-ms")), num(med(b, "ceiba-p100-ms")),
			num(med(b, "bare-p50-ms")), num(med(b, "bare-p99-ms")), num(med(b, "bare-p100-ms")),
			num(med(b, "ratio-p100")), num(med(b, "missed-nodes")), runsOf(b))
	}
	w("\n")
	writeReruns(md, func(*Bench) bool { return true }, bs)
}

func writeSearch(md *strings.Builder, res *Results) {
	var bs []*Bench
	for _, n := range []int{1000, 10000, 100000} {
		if b := res.Find(fmt.Sprintf("BenchmarkSearch/n=%d", n)); b != nil {
			bs = append(bs, b)
		}
	}
	build := res.Find("BenchmarkIndexBuild/n=100000")
	if len(bs) == 0 && build == nil {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(md, format, a...) }
	w("## Search\n\n")
	w("Latency of one query of a 24-query mix (free text, filters, the browse-everything page) on an index of n entries.\n\n")
	w("| entries | p50 (µs) | p99 (µs) | max (µs) | allocs/op | runs |\n|---:|---:|---:|---:|---:|---:|\n")
	for _, b := range bs {
		kv, _ := params(b.Name)
		n, _ := strconv.ParseFloat(kv["n"], 64)
		w("| %s | %s | %s | %s | %s | %d |\n", thousands(n), num(med(b, "p50-µs")), num(med(b, "p99-µs")), num(med(b, "max-µs")), num(med(b, "allocs/op")), b.Runs)
	}
	if build != nil {
		w("\nIndex build at start-up, 100,000 entries: %s ms, %s bytes of heap per entry (the entries themselves excluded).\n",
			num(med(build, "ns/op")/1e6), num(med(build, "heap-B/entry")))
		w("The daemon's whole state rebuild at start-up (open, verify, apply and index every stored record) is under Memory.\n")
	}
	w("\n![search](search.png)\n\n")
	writeReruns(md, func(*Bench) bool { return true }, append(bs, build))
}

func writeMemory(md *strings.Builder, res *Results) {
	var bs []*Bench
	for _, n := range []int{10000, 100000} {
		if b := res.Find(fmt.Sprintf("BenchmarkDaemonRSS/entries=%d", n)); b != nil {
			bs = append(bs, b)
		}
	}
	heap := res.Find("BenchmarkNodeHeap/n=1000")
	life := res.Find("BenchmarkDaemonLifecycleRSS")
	start := res.Find("BenchmarkStartup/entries=100000")
	retireOn, retireOff := res.Find("BenchmarkPastRotationsHeap/retire=on"), res.Find("BenchmarkPastRotationsHeap/retire=off")
	if len(bs) == 0 && heap == nil && life == nil && start == nil && retireOn == nil {
		return
	}
	w := func(format string, a ...any) { fmt.Fprintf(md, format, a...) }
	w("## Memory\n\n")
	if life != nil {
		w("Two real daemons through what people do first, at the default passphrase cost: `ceiba init` (its peak,\n")
		w("scrypt's working memory), the daemons started, the steward's after `ceiba network create`, the organization's\n")
		w("after `ceiba invite accept`, and both idle 60 s later. VmRSS, the larger of the two daemons. Target: under 80 MiB\n")
		w("after start, after accepting an invite and at idle.\n\n")
		w("| init peak | after start | after network create | after invite accept | idle 60 s | runs |\n|---:|---:|---:|---:|---:|---:|\n")
		w("| %s | %s | %s | %s | %s | %d |\n\n", num(med(life, "init-peak-MiB")), num(med(life, "started-MiB")), num(med(life, "created-MiB")),
			num(med(life, "accepted-MiB")), num(med(life, "idle-MiB")), runsOf(life))
	}
	if len(bs) > 0 {
		w("One real `ceiba daemon` process (bin/ceiba) holding n entries, filled by `ceiba import`. VmRSS after a restart on\n")
		w("the filled home is the steady state; after the import it still holds the import's garbage. Start-up is from exec\n")
		w("to the API answering with every entry; rebuild is what the node logged for reloading its state.\n\n")
		w("| entries | RSS after restart (MiB) | idle 60 s (MiB) | peak (MiB) | RSS after import (MiB) | start-up (ms) | state rebuild (ms) | runs |\n|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, b := range bs {
			kv, _ := params(b.Name)
			n, _ := strconv.ParseFloat(kv["entries"], 64)
			w("| %s | %s | %s | %s | %s | %s | %s | %d |\n", thousands(n), num(med(b, "rss-MiB")), num(med(b, "rss-idle-MiB")), num(med(b, "hwm-MiB")), num(med(b, "rss-filled-MiB")),
				num(med(b, "startup-ms")), num(med(b, "rebuild-ms")), runsOf(b))
		}
		w("\n![memory](memory.png)\n\n")
	}
	if start != nil {
		w("`node.New` on a pebble store of 100,000 entries (100 organizations), in process: every signature checked\n")
		w("(no start-up checkpoint) against the start-up checkpoint the previous Close wrote. Wall time, and the process's\n")
		w("CPU time meanwhile (the wall time grows with the machine's load).\n\n")
		w("| | wall (ms) | CPU (ms) | runs |\n|---|---:|---:|---:|\n")
		w("| every signature checked | %s | %s | %d |\n", num(med(start, "full-verify-ms")), num(med(start, "full-verify-cpu-ms")), runsOf(start))
		w("| with the checkpoint | %s | %s | %d |\n\n", num(med(start, "checkpoint-ms")), num(med(start, "checkpoint-cpu-ms")), runsOf(start))
		if v := med(start, "live-heap-MiB"); !math.IsNaN(v) {
			w("The node started with the checkpoint keeps **%s MiB** of live Go heap (after two collections).\n\n", num(v))
		}
	}
	if retireOn != nil {
		w("A steward's node takes four rotations of 10,000 recipients one after another (`BenchmarkPastRotationsHeap`),\n")
		w("measured 6 s after each (past GossipSub's history): live Go heap after the first and the fourth, and what each\n")
		w("rotation after the first adds to the heap and to the process's VmRSS (read once Go has handed back what it freed,\n")
		w("as the daemon's memory limit makes it do). The node keeps the pages of past rotations\n")
		w("on disk only; \"in memory\" is the same node with its state given no loader, as every node was before.\n\n")
		w("| past rotations' pages | heap after 1 (MiB) | heap after 4 (MiB) | heap per rotation (MiB) | RSS per rotation (MiB) | runs |\n|---|---:|---:|---:|---:|---:|\n")
		for _, row := range []struct {
			name string
			b    *Bench
		}{{"on disk only", retireOn}, {"in memory", retireOff}} {
			if row.b != nil {
				w("| %s | %s | %s | %s | %s | %d |\n", row.name, num(med(row.b, "heap-after-1-MiB")), num(med(row.b, "heap-after-4-MiB")),
					num(med(row.b, "heap-per-rotation-MiB")), num(med(row.b, "rss-per-rotation-MiB")), runsOf(row.b))
			}
		}
		w("\n")
	}
	if heap != nil {
		w("Go heap per simulated node at N = 1,000 (mock host, GossipSub, sync, state and store with the founding\n")
		w("records; no bare router): **%s KiB** (median of %d networks).\n\n", num(med(heap, "heap-KiB/node")), runsOf(heap))
	}
	writeReruns(md, func(*Bench) bool { return true }, append(bs, heap, life, start, retireOn, retireOff))
}

func writeFailures(md *strings.Builder, res *Results) {
	var failed []*Bench
	for _, name := range res.Order {
		if b := res.ByName[name]; b.Failed && len(b.Log) > 0 {
			failed = append(failed, b)
		}
	}
	if len(failed) == 0 {
		return
	}
	fmt.Fprintf(md, "## Failures\n\n")
	for _, b := range failed {
		fmt.Fprintf(md, "- `%s`: %s\n", b.Name, strings.Join(b.Log, " / "))
	}
	fmt.Fprintln(md)
}
