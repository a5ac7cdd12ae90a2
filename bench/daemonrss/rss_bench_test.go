package daemonrss

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/api"
	"github.com/ceiba-network/ceiba/node/daemon"
)

const passphrase = "bench passphrase, not a secret"

// bundle is the layout of `ceiba export` files (node/daemon's bundle).
type bundle struct {
	Network directory.NetworkID `cbor:"1,keyasint"`
	Created int64               `cbor:"2,keyasint"`
	Records [][]byte            `cbor:"3,keyasint"`
}

// bundleSize keeps each import well under the API's 64 MiB body limit.
const bundleSize = 10_000

func BenchmarkDaemonRSS(b *testing.B) {
	bin := buildCeiba(b)
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			var filled, restarted, idle, hwm, startup, load []float64
			for b.Loop() {
				b.StopTimer()
				r := measure(b, bin, n)
				b.StartTimer()
				filled = append(filled, r.filledRSS)
				restarted = append(restarted, r.restartRSS)
				idle = append(idle, r.idleRSS)
				hwm = append(hwm, r.restartHWM)
				startup = append(startup, r.startup.Seconds()*1000)
				load = append(load, r.load.Seconds()*1000)
				b.Logf("run %d: %d entries: RSS %.0f MiB after import (%.0f s for the import), %.0f MiB after a restart (peak %.0f MiB), %.0f MiB idle 60 s after it; restart to API up with all entries %.0f ms, of which state rebuild %.0f ms",
					len(filled), n, r.filledRSS, r.importTook.Seconds(), r.restartRSS, r.restartHWM, r.idleRSS, startup[len(startup)-1], load[len(load)-1])
			}
			b.ReportMetric(median(filled), "rss-filled-MiB")
			b.ReportMetric(median(restarted), "rss-MiB")
			b.ReportMetric(median(idle), "rss-idle-MiB")
			b.ReportMetric(median(hwm), "hwm-MiB")
			b.ReportMetric(median(startup), "startup-ms")
			b.ReportMetric(median(load), "rebuild-ms")
			b.Logf("median over %d runs: %.0f MiB resident after restart, %.0f MiB after import", len(filled), median(restarted), median(filled))
			b.Logf("rerun: go test -run '^$' -bench 'DaemonRSS/entries=%d$' -benchtime %dx -timeout 0 ./bench/daemonrss/", n, len(filled))
		})
	}
}

type result struct {
	filledRSS, restartRSS, idleRSS, restartHWM float64 // MiB
	importTook, startup, load                  time.Duration
}

func measure(b *testing.B, bin string, n int) result {
	home := b.TempDir()
	port := freePort(b)
	env := append(os.Environ(), "CEIBA_PASSPHRASE="+passphrase, "CEIBA_KDF_WORK_FACTOR=10")
	cli := func(args ...string) string {
		b.Helper()
		out, _ := runCeiba(b, bin, env, home, args...)
		return out
	}
	cli("init", "--local", "--name", "Colectivo de Prueba", "--api-port", strconv.Itoa(port), "--p2p-port", "0")
	d := startDaemon(b, bin, home, env)
	cli("network", "create", "--name", "Red de prueba")
	cli("key", "export", "--out", filepath.Join(home, "me.pub"))
	cli("steward", "propose", "admit", "--keyfile", filepath.Join(home, "me.pub"), "--name", "Colectivo de Prueba")
	// One organization publishes every entry here: lift the charter's
	// per-author limits (1,024 entries, 32 MiB by default) first.
	cli("steward", "propose", "charter", "--max-author-entries", "16777216", "--max-author-bytes", "1099511627776")

	ks, err := directory.LoadKeystore(daemon.Home{Dir: home}.KeysPath(), passphrase)
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := daemon.Home{Dir: home}.LoadConfig()
	if err != nil {
		b.Fatal(err)
	}
	netID, _, err := cfg.NetworkID()
	if err != nil {
		b.Fatal(err)
	}
	_, key, ok := ks.Keys.Current()
	if !ok {
		b.Fatal("the home holds no read key after creating the network")
	}
	start := time.Now()
	for lo := 0; lo < n; lo += bundleSize {
		bd := bundle{Network: netID, Created: time.Now().Unix()}
		for i := lo; i < min(n, lo+bundleSize); i++ {
			r, err := directory.NewRecord(netID, entry(i), ks.Identity)
			if err != nil {
				b.Fatal(err)
			}
			bd.Records = append(bd.Records, directory.Seal(r, key))
		}
		enc, _ := cbor.CoreDetEncOptions().EncMode()
		raw, err := enc.Marshal(&bd)
		if err != nil {
			b.Fatal(err)
		}
		file := filepath.Join(home, fmt.Sprintf("bundle-%d.cbor", lo))
		if err := os.WriteFile(file, raw, 0o600); err != nil {
			b.Fatal(err)
		}
		out := cli("import", file)
		if !strings.Contains(out, fmt.Sprintf("Imported %d new records", min(n, lo+bundleSize)-lo)) {
			b.Fatalf("import: %s", out)
		}
		os.Remove(file)
	}
	var res result
	res.importTook = time.Since(start)
	d.waitEntries(b, n)
	time.Sleep(5 * time.Second) // let the import's garbage be collected
	res.filledRSS, _ = d.rss(b)
	d.stop(b)

	t0 := time.Now()
	d = startDaemon(b, bin, home, env)
	d.waitEntries(b, n)
	res.startup = time.Since(t0)
	res.load = d.rebuildTime(b)
	time.Sleep(5 * time.Second)
	res.restartRSS, res.restartHWM = d.rss(b)
	// Idle, the runtime's own work (the scavenger, the soft memory limit's
	// updates: node/daemon/memory.go) has had time to settle.
	time.Sleep(55 * time.Second)
	res.idleRSS, _ = d.rss(b)
	d.stop(b)
	return res
}

// entry i is a service with typical fields and a description that
// differs per entry, so the index grows as a real directory's would.
func entry(i int) *directory.Entry {
	now := time.Now()
	cats := []string{"legal", "shelter", "health", "psychosocial", "digital-security", "migration", "work", "education"}
	cities := []string{"Ciudad de México", "Tapachula", "Bogotá", "Cúcuta", "Madrid", "Barcelona", "San José", "Quito"}
	return &directory.Entry{
		ID: fmt.Sprintf("servicio-%d", i), Seq: 1, Issued: now.Unix(), Expires: now.Add(90 * 24 * time.Hour).Unix(),
		Service: &directory.Service{
			Name:        fmt.Sprintf("Servicio %d de %s", i, cats[i%len(cats)]),
			Description: fmt.Sprintf("Acompañamiento número %d para personas defensoras en %s; atención con cita previa, gratuita y confidencial.", i, cities[i%len(cities)]),
			Status:      "active",
			Categories:  []string{cats[i%len(cats)], cats[(i/8)%len(cats)]},
			Languages:   []string{"es"},
			Areas:       []directory.Area{{City: cities[i%len(cities)]}},
			Contacts:    []directory.Contact{{Kind: "signal", Value: fmt.Sprintf("+52 55 %04d %04d", i/10000, i%10000), Preferred: true}},
		},
	}
}

type daemonProc struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	client *api.Client
}

func startDaemon(b *testing.B, bin, home string, env []string) *daemonProc {
	b.Helper()
	cfg, err := daemon.Home{Dir: home}.LoadConfig()
	if err != nil {
		b.Fatal(err)
	}
	tok, err := daemon.Home{Dir: home}.Token()
	if err != nil {
		b.Fatal(err)
	}
	d := &daemonProc{stderr: &bytes.Buffer{}, client: &api.Client{Base: "http://" + cfg.API.Listen, Token: tok}}
	d.cmd = exec.Command(bin, "--home", home, "daemon")
	d.cmd.Env = env
	d.cmd.Stderr = &lockedWriter{buf: d.stderr}
	if err := d.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if d.cmd.ProcessState == nil {
			d.cmd.Process.Kill()
			d.cmd.Wait()
		}
	})
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var s api.Status
		// 10 s: on a loaded machine (a load of 30 and more) a daemon that
		// has just rebuilt 100,000 entries answered none of its first
		// minutes of status requests within 2 s, and the run failed.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := d.client.Do(ctx, http.MethodGet, "/v1/status", nil, &s)
		cancel()
		if err == nil {
			return d
		}
		if time.Now().After(deadline) {
			b.Fatalf("the daemon's API did not come up: %v\n%s", err, d.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (d *daemonProc) waitEntries(b *testing.B, n int) {
	b.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for {
		var s api.Status
		if err := d.client.Do(context.Background(), http.MethodGet, "/v1/status", nil, &s); err == nil && s.Counts.Entries == n {
			return
		} else if time.Now().After(deadline) {
			b.Fatalf("the daemon shows %d entries, want %d (%v)", s.Counts.Entries, n, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rss reads the daemon's resident set and its peak, in MiB.
func (d *daemonProc) rss(b *testing.B) (rss, hwm float64) {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb / 1024
		case "VmHWM:":
			hwm = kb / 1024
		}
	}
	return rss, hwm
}

var rebuiltRE = regexp.MustCompile(`state rebuilt from the store.*took=(\S+)`)

// rebuildTime is what the node logged for rebuilding its state (opening,
// verifying and applying every stored record, indexing the entries).
func (d *daemonProc) rebuildTime(b *testing.B) time.Duration {
	m := rebuiltRE.FindStringSubmatch(d.log())
	if m == nil {
		b.Logf("the daemon did not log its state rebuild")
		return 0
	}
	t, _ := time.ParseDuration(m[1])
	return t
}

func (d *daemonProc) stop(b *testing.B) {
	b.Helper()
	d.cmd.Process.Signal(os.Interrupt)
	done := make(chan error, 1)
	go func() { done <- d.cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(time.Minute):
		d.cmd.Process.Kill()
		<-done
		b.Fatalf("the daemon did not stop on SIGINT\n%s", d.log())
	}
}

// runCeiba runs `ceiba --home home args...` and fails the benchmark if it
// fails; it returns the output and the finished command (for its rusage).
func runCeiba(b *testing.B, bin string, env []string, home string, args ...string) (string, *exec.Cmd) {
	b.Helper()
	cmd := exec.Command(bin, append([]string{"--home", home}, args...)...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("ceiba %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), cmd
}

func buildCeiba(b *testing.B) string {
	b.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		b.Fatal(err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(b.TempDir(), "ceiba")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/ceiba")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(b *testing.B) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// lockedWriter collects the daemon's log while the benchmark reads it.
type lockedWriter struct {
	mu  sync.Mutex
	buf *bytes.Buffer
}

func (w *lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.Write(p)
}

func (d *daemonProc) log() string {
	w := d.cmd.Stderr.(*lockedWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}
