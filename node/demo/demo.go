// Package demo runs Ceiba's whole story on one machine: separate node
// processes on loopback, driven through the real CLI, narrated step by step
// — a 2-of-3 network, organizations admitted, a reader invited, entries
// published and found on every node, a compromised organization revoked by
// two stewards and its entries gone everywhere, and the read key rotated so
// the revoked key opens nothing new. Every step checks what it claims; the
// demo fails loudly rather than narrate something that did not happen.
//
// It owns no protocol logic: it only runs the ceiba binary.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ceiba-network/ceiba/internal/lockedbuf"
	"github.com/ceiba-network/ceiba/node/api"
)

// Options configure a demo run.
type Options struct {
	Binary  string    // the ceiba executable
	Readers int       // reader nodes besides 3 stewards and 2 organizations
	Keep    bool      // keep the homes for inspection
	Dir     string    // where to put homes; a temporary directory if empty
	Out     io.Writer // narration
	// Timeout bounds each wait for the network to converge.
	Timeout time.Duration
}

// Result reports what the demo measured.
type Result struct {
	Nodes            int
	SearchEverywhere time.Duration // publish → found on every node
	RevokeEverywhere time.Duration // last approval → gone from every node
	RotateEverywhere time.Duration // revocation → every remaining node holds the new key
}

type proc struct {
	name string
	home string
	cmd  *exec.Cmd
	api  *api.Client
	logs *lockedbuf.Buffer
}

type run struct {
	ports map[int]bool // handed out by freePort
	o     Options
	dir   string
	procs []*proc
}

const passphrase = "demo passphrase, not for real use"

// Run executes the demo and returns its measurements.
func Run(ctx context.Context, o Options) (Result, error) {
	if o.Timeout == 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Readers < 1 {
		o.Readers = 1
	}
	return withRun(o, "ceiba-demo-", func(r *run) (Result, error) { return r.story(ctx) })
}

// withRun runs story with a run over o's homes: every daemon stops after
// it, their logs are shown if it failed, and a temporary directory of
// homes is removed unless o.Keep.
func withRun[R any](o Options, tmpPrefix string, story func(*run) (R, error)) (res R, err error) {
	if o.Out == nil {
		o.Out = io.Discard
	}
	r := &run{o: o}
	r.dir = o.Dir
	if r.dir == "" {
		if r.dir, err = os.MkdirTemp("", tmpPrefix); err != nil {
			return res, err
		}
	}
	defer func() {
		r.stopAll()
		if err != nil {
			r.dumpLogs()
		}
		if o.Keep {
			r.say("Homes kept in %s", r.dir)
		} else if o.Dir == "" {
			os.RemoveAll(r.dir)
		}
	}()
	return story(r)
}

// startNodes initializes a home for each name and starts its daemon.
func (r *run) startNodes(ctx context.Context, names []string) error {
	for _, n := range names {
		p, err := r.initNode(ctx, n)
		if err != nil {
			return err
		}
		r.procs = append(r.procs, p)
	}
	for _, p := range r.procs {
		if err := r.startDaemon(ctx, p); err != nil {
			return err
		}
	}
	return nil
}

func (r *run) say(format string, args ...any) {
	fmt.Fprintf(r.o.Out, format+"\n", args...)
}

func (r *run) step(format string, args ...any) {
	fmt.Fprintf(r.o.Out, "\n== "+format+"\n", args...)
}

func (r *run) story(ctx context.Context) (Result, error) {
	var res Result
	start := time.Now()
	r.step("Starting 3 stewards, 2 organizations and %d reader(s) (lowdata profile) as separate processes on 127.0.0.1", r.o.Readers)
	names := []string{"steward-ana", "steward-beto", "steward-carla", "org-defensoras", "org-refugio"}
	for i := 1; i <= r.o.Readers; i++ {
		names = append(names, fmt.Sprintf("reader-%d", i))
	}
	if err := r.startNodes(ctx, names); err != nil {
		return res, err
	}
	res.Nodes = len(r.procs)
	ana, beto, carla := r.procs[0], r.procs[1], r.procs[2]
	def, ref := r.procs[3], r.procs[4]
	readers := r.procs[5:]

	r.step("Creating a network whose admissions and revocations need 2 of the 3 stewards")
	for _, p := range []*proc{beto, carla} {
		if _, err := r.cli(ctx, p, "key", "export", "--out", filepath.Join(r.dir, p.name+".pub")); err != nil {
			return res, err
		}
	}
	draft := filepath.Join(r.dir, "charter-draft.ceiba")
	if _, err := r.cli(ctx, ana, "network", "create", "--name", "Red Ceiba (demo)", "--threshold", "2",
		"--steward", filepath.Join(r.dir, "steward-beto.pub"), "--steward", filepath.Join(r.dir, "steward-carla.pub"), "--draft-out", draft); err != nil {
		return res, err
	}
	for _, p := range []*proc{beto, carla} {
		if _, err := r.cli(ctx, p, "steward", "approve", "--draft", draft); err != nil {
			return res, err
		}
	}
	var created api.NetworkResult
	if err := r.cliJSON(ctx, ana, &created, "network", "create", "--draft", draft); err != nil {
		return res, err
	}
	for _, p := range []*proc{beto, carla} {
		code := ""
		for fp, c := range created.JoinCodes {
			if fp == r.fingerprint(ctx, p) {
				code = c
			}
		}
		if code == "" {
			return res, fmt.Errorf("no join code for %s", p.name)
		}
		if _, err := r.cli(ctx, p, "invite", "accept", code); err != nil {
			return res, err
		}
	}

	r.step("Admitting two organizations: Ana invites, Beto approves")
	for _, org := range []*proc{def, ref} {
		var inv api.Invite
		if err := r.cliJSON(ctx, ana, &inv, "invite", "create", "--role", "member", "--expires", "1h"); err != nil {
			return res, err
		}
		if _, err := r.cli(ctx, org, "invite", "accept", inv.Code, "--name", orgName(org.name)); err != nil {
			return res, err
		}
		id, err := r.pendingProposal(ctx, beto, "admit")
		if err != nil {
			return res, err
		}
		if _, err := r.cli(ctx, beto, "steward", "approve", id); err != nil {
			return res, err
		}
		if err := r.waitAll(ctx, "organization admitted", []*proc{org}, func(s api.Status, _ []api.Entry) bool { return s.Role == "member" }, ""); err != nil {
			return res, err
		}
	}

	r.step("Casa Refugio invites %d reader(s): activists it vouches for", len(readers))
	if err := r.inviteReaders(ctx, ref, readers); err != nil {
		return res, err
	}

	r.step("Publishing: legal aid from Defensoras, a shelter from Refugio")
	legal := filepath.Join(r.dir, "legal.yaml")
	shelter := filepath.Join(r.dir, "shelter.yaml")
	os.WriteFile(legal, []byte(legalEntry), 0o600)
	os.WriteFile(shelter, []byte(shelterEntry), 0o600)
	t0 := time.Now()
	if _, err := r.cli(ctx, def, "entry", "publish", legal); err != nil {
		return res, err
	}
	if _, err := r.cli(ctx, ref, "entry", "publish", shelter); err != nil {
		return res, err
	}
	if err := r.waitAll(ctx, "both entries searchable on every node", r.procs, func(_ api.Status, es []api.Entry) bool { return len(es) == 2 }, ""); err != nil {
		return res, err
	}
	res.SearchEverywhere = time.Since(t0)
	r.say("Found on all %d nodes %s after publishing.", len(r.procs), res.SearchEverywhere.Round(time.Millisecond))
	out, err := r.cli(ctx, readers[0], "search", "asesoria juridica")
	if err != nil {
		return res, err
	}
	r.say("%s", indent(out))

	r.step("Defensoras' laptop was seized: Ana proposes revoking its key, Carla approves")
	fp := r.fingerprint(ctx, def)
	if _, err := r.cli(ctx, ana, "steward", "propose", "revoke", fp, "--reason", "device seized"); err != nil {
		return res, err
	}
	id, err := r.pendingProposal(ctx, carla, "revoke")
	if err != nil {
		return res, err
	}
	t1 := time.Now()
	if _, err := r.cli(ctx, carla, "steward", "approve", id); err != nil {
		return res, err
	}
	others := slices.DeleteFunc(slices.Clone(r.procs), func(p *proc) bool { return p == def })
	if err := r.waitAll(ctx, "revoked entries gone from every other node", others, func(_ api.Status, es []api.Entry) bool {
		return len(es) == 1 && es[0].ID == "albergue"
	}, ""); err != nil {
		return res, err
	}
	res.RevokeEverywhere = time.Since(t1)
	r.say("Its entry disappeared from every other node %s after the second approval.", res.RevokeEverywhere.Round(time.Millisecond))

	r.step("The read key rotates automatically: everyone but the seized key gets epoch 2")
	if err := r.waitAll(ctx, "new read key on every remaining node", others, func(s api.Status, _ []api.Entry) bool { return s.KeyEpoch >= 2 }, ""); err != nil {
		return res, err
	}
	res.RotateEverywhere = time.Since(t1)
	st, err := r.status(ctx, def)
	if err != nil {
		return res, err
	}
	if st.KeyEpoch >= 2 {
		return res, fmt.Errorf("the revoked organization received the new read key (epoch %d)", st.KeyEpoch)
	}
	r.say("Remaining nodes hold epoch 2 %s after the revocation; the seized key still holds only epoch %d.", res.RotateEverywhere.Round(time.Millisecond), st.KeyEpoch)

	r.step("Refugio updates its shelter under the new key; the seized key cannot read it")
	if _, err := r.cli(ctx, ref, "entry", "publish", shelter, "--id", "albergue-nuevo"); err != nil {
		return res, err
	}
	if err := r.waitAll(ctx, "new entry on every remaining node", others, func(_ api.Status, es []api.Entry) bool { return len(es) == 2 }, ""); err != nil {
		return res, err
	}
	time.Sleep(time.Second) // give the seized node every chance to (fail to) read it
	es, err := r.search(ctx, def)
	if err != nil {
		return res, err
	}
	for _, e := range es {
		if e.ID == "albergue-nuevo" {
			return res, errors.New("the revoked node could read an entry sealed under the new key")
		}
	}
	r.say("The seized node's copy lists %d live entries, none of them published after the rotation.", len(es))

	r.step("What the reader's metered link paid for")
	out, err = r.cli(ctx, readers[0], "status")
	if err != nil {
		return res, err
	}
	traffic := ""
	for _, line := range strings.Split(out, "\n") {
		if t, ok := strings.CutPrefix(line, "Traffic:"); ok && strings.Contains(t, "profile lowdata, DHT client; caps") {
			traffic = strings.TrimSpace(t)
		}
	}
	if traffic == "" {
		return res, fmt.Errorf("the reader's status shows no lowdata caps:\n%s", out)
	}
	r.say("The reader runs the lowdata profile (a metered link): %s", traffic)
	r.step("Done in %s. Stopping all nodes.", time.Since(start).Round(100*time.Millisecond))
	return res, nil
}

func orgName(n string) string {
	switch n {
	case "org-defensoras":
		return "Defensoras en Exilio"
	case "org-refugio":
		return "Casa Refugio"
	}
	return n
}

func indent(s string) string {
	return "    " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n    ")
}

// freePort asks the kernel for a free loopback port that this run has not
// handed out yet: the port is released before the daemon binds it, so the
// kernel may offer the same one again, which with 124 ports to pick (62
// daemons) happened (two daemons on one API port).
func (r *run) freePort() (int, error) {
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !r.ports[port] {
			if r.ports == nil {
				r.ports = map[int]bool{}
			}
			r.ports[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no loopback port this run has not used")
}

func (r *run) env() []string {
	return append(os.Environ(), "CEIBA_PASSPHRASE="+passphrase, "CEIBA_KDF_WORK_FACTOR=12", "CEIBA_SYNC_INTERVAL=2s")
}

func (r *run) initNode(ctx context.Context, name string) (*proc, error) {
	p := &proc{name: name, home: filepath.Join(r.dir, name), logs: &lockedbuf.Buffer{}}
	apiPort, err := r.freePort()
	if err != nil {
		return nil, err
	}
	p2pPort, err := r.freePort()
	if err != nil {
		return nil, err
	}
	profile := "laptop"
	if strings.HasPrefix(name, "reader-") {
		// Readers are activists on phones and metered links.
		profile = "lowdata"
	}
	if _, err := r.exec(ctx, p, false, "init", "--local", "--profile", profile, "--name", orgName(name), "--api-port", fmt.Sprint(apiPort), "--p2p-port", fmt.Sprint(p2pPort)); err != nil {
		return nil, err
	}
	tok, err := os.ReadFile(filepath.Join(p.home, "api.token"))
	if err != nil {
		return nil, err
	}
	p.api = &api.Client{Base: fmt.Sprintf("http://127.0.0.1:%d", apiPort), Token: strings.TrimSpace(string(tok)), HTTP: &http.Client{Timeout: 10 * time.Second}}
	return p, nil
}

func (r *run) startDaemon(ctx context.Context, p *proc) error {
	p.cmd = exec.Command(r.o.Binary, "--home", p.home, "daemon")
	p.cmd.Env = r.env()
	p.cmd.Stdout = p.logs
	p.cmd.Stderr = p.logs
	if err := p.cmd.Start(); err != nil {
		return err
	}
	deadline := time.Now().Add(r.o.Timeout)
	for time.Now().Before(deadline) {
		if _, err := r.status(ctx, p); err == nil {
			r.say("  %-16s up (API %s)", p.name, strings.TrimPrefix(p.api.Base, "http://"))
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s: daemon did not start", p.name)
}

func (r *run) stopAll() {
	for _, p := range r.procs {
		if p.cmd != nil && p.cmd.Process != nil {
			p.cmd.Process.Signal(os.Interrupt)
		}
	}
	for _, p := range r.procs {
		if p.cmd == nil || p.cmd.Process == nil {
			continue
		}
		done := make(chan struct{})
		go func() { p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-done
		}
	}
}

func (r *run) dumpLogs() {
	for _, p := range r.procs {
		logs := p.logs.String()
		lines := strings.Split(strings.TrimSpace(logs), "\n")
		if len(lines) > 30 {
			lines = lines[len(lines)-30:]
		}
		fmt.Fprintf(r.o.Out, "\n--- last log lines of %s ---\n%s\n", p.name, strings.Join(lines, "\n"))
	}
}

// cli runs one ceiba command against p's home and shows it.
func (r *run) cli(ctx context.Context, p *proc, args ...string) (string, error) {
	return r.exec(ctx, p, true, args...)
}

func (r *run) cliJSON(ctx context.Context, p *proc, out any, args ...string) error {
	s, err := r.exec(ctx, p, true, append([]string{"--json"}, args...)...)
	if err != nil {
		return err
	}
	return json.Unmarshal([]byte(s), out)
}

func (r *run) exec(ctx context.Context, p *proc, show bool, args ...string) (string, error) {
	if show {
		shown := make([]string, len(args))
		for i, a := range args {
			if strings.HasPrefix(a, "ceiba-invite:") && len(a) > 40 {
				a = a[:32] + "…"
			}
			if strings.HasPrefix(a, r.dir) {
				a = filepath.Base(a)
			}
			if strings.ContainsAny(a, " ") {
				a = fmt.Sprintf("%q", a)
			}
			shown[i] = a
		}
		r.say("  [%s] $ ceiba %s", p.name, strings.Join(shown, " "))
	}
	cmd := exec.CommandContext(ctx, r.o.Binary, append([]string{"--home", p.home}, args...)...)
	cmd.Env = r.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%s: ceiba %s: %v: %s", p.name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

func (r *run) status(ctx context.Context, p *proc) (api.Status, error) {
	var s api.Status
	err := p.api.Do(ctx, http.MethodGet, "/v1/status", nil, &s)
	return s, err
}

func (r *run) search(ctx context.Context, p *proc) ([]api.Entry, error) {
	var es []api.Entry
	err := p.api.Do(ctx, http.MethodGet, "/v1/search", nil, &es)
	return es, err
}

func (r *run) fingerprint(ctx context.Context, p *proc) string {
	s, _ := r.status(ctx, p)
	return s.Fingerprint
}

// pendingProposal waits until p sees a pending proposal of the kind and
// returns its ID.
func (r *run) pendingProposal(ctx context.Context, p *proc, kind string) (string, error) {
	deadline := time.Now().Add(r.o.Timeout)
	for time.Now().Before(deadline) {
		var ps []api.Proposal
		if err := p.api.Do(ctx, http.MethodGet, "/v1/proposals", nil, &ps); err == nil {
			for _, pr := range ps {
				if pr.Kind == kind && !pr.Effective {
					return pr.ID, nil
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", fmt.Errorf("%s never saw the pending %s proposal", p.name, kind)
}

// waitAll polls every node until ok holds for its status and its search
// results (an empty query lists everything live).
// inviteReaders has org invite each reader, each reader accept, and waits
// until every one of them is a reader.
func (r *run) inviteReaders(ctx context.Context, org *proc, readers []*proc) error {
	for _, rd := range readers {
		var inv api.Invite
		if err := r.cliJSON(ctx, org, &inv, "invite", "create", "--role", "reader", "--expires", "1h"); err != nil {
			return err
		}
		if _, err := r.cli(ctx, rd, "invite", "accept", inv.Code); err != nil {
			return err
		}
	}
	return r.waitAll(ctx, "readers admitted", readers, func(s api.Status, _ []api.Entry) bool { return s.Role == "reader" }, "")
}

func (r *run) waitAll(ctx context.Context, what string, procs []*proc, ok func(api.Status, []api.Entry) bool, query string) error {
	deadline := time.Now().Add(r.o.Timeout)
	for {
		pending := []string{}
		for _, p := range procs {
			s, err := r.status(ctx, p)
			var es []api.Entry
			if err == nil && s.Joined {
				err = p.api.Do(ctx, http.MethodGet, "/v1/search?q="+query, nil, &es)
			}
			if err != nil || !ok(s, es) {
				pending = append(pending, p.name)
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not reached on %s within %s", what, strings.Join(pending, ", "), r.o.Timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

const legalEntry = `id: asesoria-juridica
service:
  name: Asesoría jurídica para personas defensoras
  description: Acompañamiento legal en solicitudes de asilo y medidas de protección.
  status: active
  categories: [legal, migration]
  languages: [es, en]
  areas:
    - city: Ciudad de México
      country: MX
  contacts:
    - kind: signal
      value: "+52 55 0000 0001"
      preferred: true
`

const shelterEntry = `id: albergue
service:
  name: Albergue temporal Casa Refugio
  description: Alojamiento seguro por hasta 30 días para personas defensoras desplazadas.
  status: active
  categories: [shelter]
  languages: [es]
  areas:
    - city: Bogotá
      country: CO
  contacts:
    - kind: email
      value: refugio@example.org
`
