package main

import (
	"bufio"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// A result line of go test -bench, for instance
//
//	BenchmarkSearch/n=1000-2   	  100	  31234 ns/op	 12.0 p50-µs	 40.0 p99-µs
//
// and the logs a benchmark prints under it, indented, after a
// "--- BENCH: name" line.
var (
	resultRE = regexp.MustCompile(`^(Benchmark\S+?)(?:-(\d+))?\s+(\d+)\s+(.*)$`)
	benchRE  = regexp.MustCompile(`^\s*--- (BENCH|FAIL): (Benchmark\S+?)(?:-\d+)?$`)
	rerunRE  = regexp.MustCompile(`rerun: (.*)$`)
	pkgRE    = regexp.MustCompile(`^pkg: (\S+)`)
	stepRE   = regexp.MustCompile(`^# step (\S+): (.*)$`)
)

// Bench is one benchmark's results over all the times it ran (-count).
type Bench struct {
	Name    string // full name without the GOMAXPROCS suffix
	Pkg     string
	Step    string // the runner step that ran it
	Command string // how the step ran it
	Procs   int
	Runs    int                  // result lines seen
	Metrics map[string][]float64 // unit → value per result line
	Rerun   string               // the rerun command the benchmark printed, if any
	Failed  bool
	Log     []string
}

// Median is the median of a metric over the result lines, and whether the
// benchmark reported it.
func (b *Bench) Median(unit string) (float64, bool) {
	v := b.Metrics[unit]
	if len(v) == 0 {
		return 0, false
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2], true
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2, true
}

// Results are the benchmarks of one or more go test runs, by name.
type Results struct {
	Order   []string
	ByName  map[string]*Bench
	Headers []string // lines the runner wrote about the machine and the steps
}

func (r *Results) get(name string) *Bench {
	if b, ok := r.ByName[name]; ok {
		return b
	}
	b := &Bench{Name: name, Metrics: map[string][]float64{}}
	r.ByName[name] = b
	r.Order = append(r.Order, name)
	return b
}

// Find returns the benchmark of that full name, or nil.
func (r *Results) Find(name string) *Bench { return r.ByName[name] }

// Parse reads go test -bench output, and the runner's own "# " lines.
func Parse(in io.Reader) (*Results, error) {
	res := &Results{ByName: map[string]*Bench{}}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var pkg, step, command string
	var cur *Bench // the benchmark whose logs follow
	for sc.Scan() {
		line := sc.Text()
		if m := stepRE.FindStringSubmatch(line); m != nil {
			step, command = m[1], m[2]
			// A step run again (run -append) replaces its earlier results.
			res.Order = slices.DeleteFunc(res.Order, func(name string) bool {
				if res.ByName[name].Step == step {
					delete(res.ByName, name)
					return true
				}
				return false
			})
			res.Headers = append(res.Headers, line)
			continue
		}
		if strings.HasPrefix(line, "# ") {
			res.Headers = append(res.Headers, line)
			continue
		}
		if m := pkgRE.FindStringSubmatch(line); m != nil {
			pkg = m[1]
			continue
		}
		if m := benchRE.FindStringSubmatch(line); m != nil {
			cur = res.get(m[2])
			if m[1] == "FAIL" {
				cur.Failed = true
				if cur.Step == "" {
					cur.Pkg, cur.Step, cur.Command = pkg, step, command
				}
			}
			continue
		}
		if m := resultRE.FindStringSubmatch(line); m != nil {
			b := res.get(m[1])
			b.Pkg, b.Step, b.Command = pkg, step, command
			b.Procs, _ = strconv.Atoi(m[2])
			b.Runs++
			f := strings.Fields(m[4])
			for i := 0; i+1 < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					continue
				}
				b.Metrics[f[i+1]] = append(b.Metrics[f[i+1]], v)
			}
			cur = nil
			continue
		}
		if cur != nil && strings.HasPrefix(line, "   ") {
			text := strings.TrimSpace(line)
			if m := rerunRE.FindStringSubmatch(text); m != nil {
				cur.Rerun = m[1]
			}
			cur.Log = append(cur.Log, text)
			continue
		}
		cur = nil
	}
	return res, sc.Err()
}
