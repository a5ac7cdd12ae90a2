package demo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ceiba-network/ceiba/node/api"
)

// RotationResult reports what RunRotation measured.
type RotationResult struct {
	Nodes           int
	RotateAll       time.Duration // revocation → every remaining node holds the new key
	FoundByLast     time.Duration // publish after the rotation → found by the last reader
	MaxRSS          int64         // the largest daemon's resident set, bytes, sampled while it ran
	MaxRSSName      string
	TotalRSS        int64 // every daemon's resident set at the end, summed
	StewardRSS      int64 // the steward's daemon at the end (it sealed the rotation)
	ReaderRSSMedian int64 // the median reader daemon at the end
}

// RunRotation is issue 14's test with real daemons: one steward, one
// organization and o.Readers readers (at least 60 for the issue), each a
// separate ceiba process on loopback driven through the CLI. The steward
// revokes one reader; its daemon rotates the read key on its own; the
// organization publishes afterwards; the last reader finds the new entry
// and the revoked one does not. It samples the daemons' resident memory
// from /proc while it runs (Linux; zero elsewhere).
func RunRotation(ctx context.Context, o Options) (RotationResult, error) {
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.Readers < 2 {
		return RotationResult{}, errors.New("demo: the rotation story needs at least 2 readers (one is revoked)")
	}
	return withRun(o, "ceiba-rotation-", func(r *run) (RotationResult, error) { return r.rotationStory(ctx) })
}

func (r *run) rotationStory(ctx context.Context) (RotationResult, error) {
	var res RotationResult
	r.step("Starting 1 steward, 1 organization and %d readers as separate processes on 127.0.0.1", r.o.Readers)
	names := []string{"steward-ana", "org-refugio"}
	for i := 1; i <= r.o.Readers; i++ {
		names = append(names, fmt.Sprintf("reader-%d", i))
	}
	if err := r.startNodes(ctx, names); err != nil {
		return res, err
	}
	res.Nodes = len(r.procs)
	// Sample every daemon's resident set while the story runs; the
	// sampler's figures are read only once it has stopped.
	var maxRSS int64
	var maxName string
	sampled := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			for _, p := range r.procs {
				if v := rss(p); v > maxRSS {
					maxRSS, maxName = v, p.name
				}
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()
	defer func() {
		select {
		case <-stopSampling:
		default:
			close(stopSampling)
			<-sampled
		}
	}()
	ana, org := r.procs[0], r.procs[1]
	readers := r.procs[2:]
	victim, last := readers[0], readers[len(readers)-1]

	r.step("Creating a network with one steward")
	if _, err := r.cli(ctx, ana, "network", "create", "--name", "Red Ceiba (rotation)", "--threshold", "1"); err != nil {
		return res, err
	}
	var inv api.Invite
	if err := r.cliJSON(ctx, ana, &inv, "invite", "create", "--role", "member", "--expires", "1h"); err != nil {
		return res, err
	}
	if _, err := r.cli(ctx, org, "invite", "accept", inv.Code, "--name", orgName(org.name)); err != nil {
		return res, err
	}
	if err := r.waitAll(ctx, "organization admitted", []*proc{org}, func(s api.Status, _ []api.Entry) bool { return s.Role == "member" }, ""); err != nil {
		return res, err
	}

	r.step("Casa Refugio invites %d readers", len(readers))
	if err := r.inviteReaders(ctx, org, readers); err != nil {
		return res, err
	}

	r.step("A reader's phone was seized: the steward revokes its key, and its daemon rotates the read key alone")
	fp := r.fingerprint(ctx, victim)
	if _, err := r.cli(ctx, ana, "steward", "propose", "revoke", fp, "--reason", "device seized"); err != nil {
		return res, err
	}
	t0 := time.Now()
	others := slices.DeleteFunc(slices.Clone(r.procs), func(p *proc) bool { return p == victim })
	if err := r.waitAll(ctx, "new read key on every remaining node", others, func(s api.Status, _ []api.Entry) bool { return s.KeyEpoch >= 2 }, ""); err != nil {
		return res, err
	}
	res.RotateAll = time.Since(t0)
	r.say("Every remaining node holds epoch 2 %s after the revocation.", res.RotateAll.Round(time.Millisecond))
	out, err := r.cli(ctx, ana, "status")
	if err != nil {
		return res, err
	}
	if !strings.Contains(out, "complete") {
		return res, fmt.Errorf("the steward's status does not show the rotation complete:\n%s", out)
	}

	r.step("Casa Refugio publishes under the new key; the last reader finds it, the revoked one cannot")
	shelter := filepath.Join(r.dir, "shelter.yaml")
	if err := os.WriteFile(shelter, []byte(shelterEntry), 0o600); err != nil {
		return res, err
	}
	t1 := time.Now()
	if _, err := r.cli(ctx, org, "entry", "publish", shelter, "--id", "albergue-nuevo"); err != nil {
		return res, err
	}
	has := func(es []api.Entry) bool {
		return slices.ContainsFunc(es, func(e api.Entry) bool { return e.ID == "albergue-nuevo" })
	}
	if err := r.waitAll(ctx, "the new entry on the last reader", []*proc{last}, func(_ api.Status, es []api.Entry) bool { return has(es) }, ""); err != nil {
		return res, err
	}
	res.FoundByLast = time.Since(t1)
	out, err = r.cli(ctx, last, "search", "albergue")
	if err != nil {
		return res, err
	}
	r.say("%s", indent(out))
	// Every other remaining node gets it too; by then the revoked node has
	// had every chance to (fail to) read it.
	if err := r.waitAll(ctx, "the new entry on every remaining node", others, func(_ api.Status, es []api.Entry) bool { return has(es) }, ""); err != nil {
		return res, err
	}
	st, err := r.status(ctx, victim)
	if err != nil {
		return res, err
	}
	es, err := r.search(ctx, victim)
	if err != nil {
		return res, err
	}
	if has(es) || st.KeyEpoch >= 2 {
		return res, fmt.Errorf("the revoked reader reads what came after its revocation (key epoch %d, %d entries)", st.KeyEpoch, len(es))
	}
	r.say("The revoked reader holds only epoch %d and lists %d entries; the new one is not among them.", st.KeyEpoch, len(es))

	close(stopSampling)
	<-sampled
	res.MaxRSS, res.MaxRSSName = maxRSS, maxName
	var readerRSS []int64
	for _, p := range r.procs {
		v := rss(p)
		res.TotalRSS += v
		if strings.HasPrefix(p.name, "reader-") {
			readerRSS = append(readerRSS, v)
		}
	}
	res.StewardRSS = rss(ana)
	slices.Sort(readerRSS)
	res.ReaderRSSMedian = readerRSS[len(readerRSS)/2]
	r.say("Resident memory: largest daemon %s (%s), steward %s, median reader %s, all %d daemons %s.",
		mib(res.MaxRSS), res.MaxRSSName, mib(res.StewardRSS), mib(res.ReaderRSSMedian), res.Nodes, mib(res.TotalRSS))
	return res, nil
}

// rss is p's daemon's resident set in bytes, from /proc (0 if unknown).
func rss(p *proc) int64 {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err == nil {
				return kb << 10
			}
		}
	}
	return 0
}

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }
