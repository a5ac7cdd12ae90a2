package daemonrss

import (
	"os"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// BenchmarkDaemonLifecycleRSS follows two real daemons through what people
// do first, at the default passphrase cost (scrypt's 256 MiB working
// memory, not the tests' cheap one): `ceiba init` (its peak), `ceiba
// daemon` started, `ceiba network create` on the steward's, `ceiba invite
// accept` on the organization's, and both idle 60 s later. Each figure is
// the larger VmRSS of the daemons at that point. Target (issue 17): under
// 80 MiB after start, after accepting an invite and at idle.
func BenchmarkDaemonLifecycleRSS(b *testing.B) {
	bin := buildCeiba(b)
	var initPeak, started, created, accepted, idle []float64
	for b.Loop() {
		b.StopTimer()
		env := append(os.Environ(), "CEIBA_PASSPHRASE="+passphrase)
		steward, org := b.TempDir(), b.TempDir()
		cli := func(home string, args ...string) string {
			b.Helper()
			out, cmd := runCeiba(b, bin, env, home, args...)
			if args[0] == "init" {
				// Linux reports ru_maxrss in KiB.
				initPeak = append(initPeak, float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)/1024)
			}
			return out
		}
		for _, h := range []string{steward, org} {
			cli(h, "init", "--local", "--name", "Prueba", "--api-port", strconv.Itoa(freePort(b)), "--p2p-port", "0")
		}
		ds := startDaemon(b, bin, steward, env)
		do := startDaemon(b, bin, org, env)
		both := func() float64 {
			a, _ := ds.rss(b)
			c, _ := do.rss(b)
			return max(a, c)
		}
		started = append(started, both())
		cli(steward, "network", "create", "--name", "Red de prueba")
		a, _ := ds.rss(b)
		created = append(created, a)
		code := inviteCodeRE.FindString(cli(steward, "invite", "create", "--role", "member"))
		if code == "" {
			b.Fatal("ceiba invite create printed no code")
		}
		cli(org, "invite", "accept", code)
		c, _ := do.rss(b)
		accepted = append(accepted, c)
		time.Sleep(60 * time.Second)
		idle = append(idle, both())
		b.Logf("run %d: init peak %.0f MiB; after start %.0f MiB; steward after network create %.0f MiB; organization after invite accept %.0f MiB; idle 60 s later %.0f MiB",
			len(idle), initPeak[len(initPeak)-1], started[len(started)-1], created[len(created)-1], accepted[len(accepted)-1], idle[len(idle)-1])
		ds.stop(b)
		do.stop(b)
		b.StartTimer()
	}
	b.ReportMetric(median(initPeak), "init-peak-MiB")
	b.ReportMetric(median(started), "started-MiB")
	b.ReportMetric(median(created), "created-MiB")
	b.ReportMetric(median(accepted), "accepted-MiB")
	b.ReportMetric(median(idle), "idle-MiB")
}

var inviteCodeRE = regexp.MustCompile(`ceiba-invite:\S+`)
