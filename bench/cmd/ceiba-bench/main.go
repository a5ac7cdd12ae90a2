// Command ceiba-bench runs Ceiba's benchmarks and reports them: the
// measures that matter in DESIGN.md, each against its target.
//
//	go run ./bench/cmd/ceiba-bench run     # every benchmark: bench/results/latest.txt
//	go run ./bench/cmd/ceiba-bench report  # table and plots from bench/results/latest.txt
//	go run ./bench/cmd/ceiba-bench steps   # what run runs
//
// run appends the raw go test output of every step to
// bench/results/latest.txt (with "# " lines saying what ran and how loaded
// the machine was); report turns that file into bench/results/latest.md
// and PNG plots next to it. -only runs the steps whose names match a
// regexp, -append adds them to the existing file (replacing those steps'
// earlier results), -quick shrinks every step to a smoke test of the
// pipeline (its numbers are not results).
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"time"
)

// step is one go test invocation.
type step struct {
	name string
	pkg  string
	args []string // after "go test -run ^$"
	// quick replaces args under -quick.
	quick []string
}

var steps = []step{
	{
		// "On one core": the ingest rate and the raw verification rate are
		// measured with GOMAXPROCS=1, in the same process, one after the other.
		name:  "ingest",
		pkg:   "./directory/",
		args:  []string{"-bench", "^(BenchmarkIngest|BenchmarkEd25519Verify|BenchmarkOpenVerify|BenchmarkApplyEntry|BenchmarkSealSign)$", "-benchmem", "-cpu", "1", "-count", "5"},
		quick: []string{"-bench", "^(BenchmarkIngest|BenchmarkEd25519Verify)$", "-cpu", "1", "-count", "1", "-benchtime", "2000x"},
	},
	{
		// Issue 19: one governance record with a pool full of junk and
		// 10,000 reader grants; the target is under 1 ms.
		name:  "governance",
		pkg:   "./directory/",
		args:  []string{"-bench", "^BenchmarkApplyGovernanceWithJunk$", "-benchmem", "-benchtime", "200x", "-count", "3"},
		quick: []string{"-bench", "^BenchmarkApplyGovernanceWithJunk$", "-benchtime", "20x", "-count", "1"},
	},
	{
		name:  "search",
		pkg:   "./directory/",
		args:  []string{"-bench", "^(BenchmarkSearch|BenchmarkIndexBuild)$", "-benchmem", "-count", "5"},
		quick: []string{"-bench", "^BenchmarkSearch$/^n=1000$", "-count", "1", "-benchtime", "200x"},
	},
	{
		name: "gossip",
		pkg:  "./bench/sim/",
		// Ten runs: at 0 ms links one run's ratio differs from the next
		// by up to a half on a shared two-core machine, and a median of
		// five moved by 0.2 to 0.3 between samples.
		args:  []string{"-bench", "^BenchmarkGossip$/^n=(10|100)$", "-benchtime", "10x", "-timeout", "0"},
		quick: []string{"-bench", "^BenchmarkGossip$/^n=10$/^lat=0ms$", "-benchtime", "2x", "-timeout", "0"},
	},
	{
		// A thousand nodes take most of a minute to start and far longer
		// per run than the small networks: five runs each (three left
		// the median to whichever run fell between a fast and a slow one).
		name: "gossip-1000",
		pkg:  "./bench/sim/",
		args: []string{"-bench", "^BenchmarkGossip$/^n=1000$", "-benchtime", "5x", "-timeout", "0"},
	},
	{
		// Issue 17: the small 0 ms networks with every node's store on
		// disk, where a durable write on a hop's path shows.
		name:  "gossip-disk",
		pkg:   "./bench/sim/",
		args:  []string{"-bench", "^BenchmarkGossipOnDisk$", "-benchtime", "15x", "-timeout", "0"},
		quick: []string{"-bench", "^BenchmarkGossipOnDisk$/^n=10$", "-benchtime", "2x", "-timeout", "0"},
	},
	{
		// Issue 13: 50 members and 250, then 1,000 readers linked only
		// to members; publish until searchable on every reader, against
		// bare GossipSub on the same links.
		name:  "readers",
		pkg:   "./bench/sim/",
		args:  []string{"-bench", "^BenchmarkReaders$/^members=50$/^readers=(250|1000)$", "-benchtime", "3x", "-timeout", "0"},
		quick: []string{"-bench", "^BenchmarkReaders$/^members=20/", "-benchtime", "1x", "-timeout", "0"},
	},
	{
		name: "heap",
		pkg:  "./bench/sim/",
		args: []string{"-bench", "^BenchmarkNodeHeap$", "-benchtime", "3x", "-timeout", "0"},
	},
	{
		name:  "catchup",
		pkg:   "./bench/sim/",
		args:  []string{"-bench", "^BenchmarkCatchUp$", "-benchtime", "3x", "-timeout", "0"},
		quick: []string{"-bench", "^BenchmarkCatchUp$/^via=sync$/^updates=1000$", "-benchtime", "1x", "-timeout", "0"},
	},
	{
		name:  "dht",
		pkg:   "./bench/sim/",
		args:  []string{"-bench", "^BenchmarkDHTPutGet$", "-benchtime", "20x", "-timeout", "0"},
		quick: []string{"-bench", "^BenchmarkDHTPutGet$/^n=100$/^lat=0ms$", "-benchtime", "3x", "-timeout", "0"},
	},
	{
		// Issue 21: one member churning past its update rate on 100
		// nodes; revocation time against the quiet network.
		name:  "churn",
		pkg:   "./bench/sim/",
		args:  []string{"-bench", "^BenchmarkChurn$", "-benchtime", "3x", "-timeout", "0"},
		quick: []string{"-bench", "^BenchmarkChurn$", "-benchtime", "1x", "-timeout", "0"},
	},
	{
		name: "invite",
		pkg:  "./bench/sim/",
		args: []string{"-bench", "^BenchmarkDHTInviteFetch$", "-benchtime", "5x", "-timeout", "0"},
	},
	{
		// Issue 14: sealing a rotation on one core (target: 10,000
		// recipients in under 10 s of CPU) and its size on the wire.
		name:  "rotation-seal",
		pkg:   "./directory/",
		args:  []string{"-bench", "^BenchmarkNewEpoch$", "-cpu", "1", "-count", "3"},
		quick: []string{"-bench", "^BenchmarkNewEpoch$/^recipients=100$", "-cpu", "1", "-count", "1", "-benchtime", "1x"},
	},
	{
		// Issue 14: time until every node holds a rotation's key, 30 nodes
		// at 20 ms links (target: under 5 s at 10,000 recipients).
		name:  "rotation",
		pkg:   "./bench/sim/",
		args:  []string{"-bench", "^BenchmarkRotation$", "-benchtime", "3x", "-timeout", "0"},
		quick: []string{"-bench", "^BenchmarkRotation$/^recipients=100$", "-benchtime", "1x", "-timeout", "0"},
	},
	{
		name:  "daemon",
		pkg:   "./bench/daemonrss/",
		args:  []string{"-bench", "^BenchmarkDaemonRSS$", "-benchtime", "3x", "-timeout", "0"},
		quick: []string{"-bench", "^BenchmarkDaemonRSS$/^entries=10000$", "-benchtime", "1x", "-timeout", "0"},
	},
	{
		// Issue 17: a node's start on a 100,000-entry store with and
		// without the start-up checkpoint (target: under 1 s).
		name:  "startup",
		pkg:   "./node/",
		args:  []string{"-bench", "^BenchmarkStartup$/^entries=100000$", "-benchtime", "3x", "-timeout", "0"},
		quick: []string{"-bench", "^BenchmarkStartup$/^entries=10000$", "-benchtime", "1x", "-timeout", "0"},
	},
	{
		// Issue 17 (SECURITY.md open issue 13): what a node keeps of each
		// past rotation of 10,000 recipients.
		name:  "rotation-heap",
		pkg:   "./node/",
		args:  []string{"-bench", "^BenchmarkPastRotationsHeap$", "-benchtime", "1x", "-count", "2", "-timeout", "0"},
		quick: []string{"-bench", "^BenchmarkPastRotationsHeap$/^retire=on$", "-benchtime", "1x", "-timeout", "0"},
	},
	{
		// Issue 17: resident memory through init, start, network create,
		// invite accept and idle, at the default passphrase cost.
		name: "daemon-lifecycle",
		pkg:  "./bench/daemonrss/",
		args: []string{"-bench", "^BenchmarkDaemonLifecycleRSS$", "-benchtime", "3x", "-timeout", "0"},
	},
}

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	out := fs.String("out", "bench/results", "directory for latest.txt, latest.md and the plots")
	in := fs.String("in", "", "raw go test output to report on (default: OUT/latest.txt)")
	only := fs.String("only", "", "run only the steps whose names match this regexp")
	quick := fs.Bool("quick", false, "a smoke test of the pipeline: tiny runs whose numbers are not results")
	appendTo := fs.Bool("append", false, "add to OUT/latest.txt instead of starting it afresh; a step run again replaces its earlier results")
	fs.Parse(os.Args[2:])
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = run(ctx, *out, *only, *quick, *appendTo)
	case "report":
		if *in == "" {
			*in = filepath.Join(*out, "latest.txt")
		}
		err = report(*in, *out)
	case "steps":
		for _, s := range steps {
			fmt.Printf("%-12s go test -run '^$' %s %s\n", s.name, shellJoin(s.args), s.pkg)
		}
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ceiba-bench:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: ceiba-bench run|report|steps [-out DIR] [-in FILE] [-only REGEXP] [-append] [-quick]")
	os.Exit(2)
}

// run executes the steps in order, teeing their output to the terminal
// and to OUT/latest.txt. A step that fails is recorded and the others
// still run: a missed target is a result, a crash is reported as one.
func run(ctx context.Context, out, only string, quick, appendTo bool) error {
	var sel *regexp.Regexp
	if only != "" {
		var err error
		if sel, err = regexp.Compile(only); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	mode := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if appendTo {
		mode = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(filepath.Join(out, "latest.txt"), mode, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	w := io.MultiWriter(os.Stdout, f)
	started := time.Now()
	fmt.Fprintf(w, "# started %s\n", started.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "# machine %s, %d CPUs (%s), %s\n", cpuModel(), runtime.NumCPU(), runtime.GOARCH, runtime.Version())
	fmt.Fprintf(w, "# commit %s\n", gitDescribe())
	if quick {
		fmt.Fprintln(w, "# quick: smoke-test runs, not results")
	}
	var failed []string
	for _, s := range steps {
		if sel != nil && !sel.MatchString(s.name) {
			continue
		}
		args := s.args
		if quick {
			if s.quick == nil {
				continue
			}
			args = s.quick
		}
		full := append([]string{"test", "-run", "^$"}, args...)
		full = append(full, s.pkg)
		fmt.Fprintf(w, "# step %s: go %s\n", s.name, shellJoin(full))
		fmt.Fprintf(w, "# load before %s: %s\n", s.name, loadAvg())
		t0 := time.Now()
		cmd := exec.CommandContext(ctx, "go", full...)
		cmd.Stdout, cmd.Stderr = w, w
		err := cmd.Run()
		fmt.Fprintf(w, "# load after %s: %s (step took %s)\n", s.name, loadAvg(), time.Since(t0).Round(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(w, "# step %s failed: %v\n", s.name, err)
			failed = append(failed, s.name)
		}
	}
	fmt.Fprintf(w, "# finished %s, took %s\n", time.Now().UTC().Format(time.RFC3339), time.Since(started).Round(time.Second))
	if len(failed) > 0 {
		fmt.Fprintf(os.Stderr, "ceiba-bench: steps failed: %s (the report shows what they measured)\n", strings.Join(failed, ", "))
	}
	return nil
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func gitDescribe() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	rev := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain").Output(); err == nil && len(bytes.TrimSpace(st)) > 0 {
		rev += " with uncommitted changes"
	}
	return rev
}

// shellJoin quotes arguments the way a reader would type them.
func shellJoin(args []string) string {
	var b strings.Builder
	for i, a := range args {
		if i > 0 {
			b.WriteByte(' ')
		}
		if a == "" || strings.ContainsAny(a, " ^$|()*?[]'\"\\") {
			b.WriteString("'" + strings.ReplaceAll(a, "'", `'\''`) + "'")
		} else {
			b.WriteString(a)
		}
	}
	return b.String()
}

var errNoResults = errors.New("no benchmark results")
