package webui_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/api"
	"github.com/ceiba-network/ceiba/node/daemon"
	"github.com/ceiba-network/ceiba/node/webui"
)

// The daemon is the Backend the UI is written for.
var _ webui.Backend = (*daemon.Daemon)(nil)

// node is a real daemon on loopback with its UI and its API token.
type node struct {
	d     *daemon.Daemon
	url   string
	token string
	home  string
}

func startNode(t *testing.T, name string) *node {
	t.Helper()
	h := daemon.Home{Dir: filepath.Join(t.TempDir(), name)}
	if _, err := daemon.Init(h, daemon.InitOptions{Name: name, Passphrase: "frase de prueba", WorkFactor: 10, Local: true}); err != nil {
		t.Fatal(err)
	}
	d, err := daemon.Start(context.Background(), daemon.Options{Home: h, Passphrase: "frase de prueba", WorkFactor: 10,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), SyncInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	tok, err := h.Token()
	if err != nil {
		t.Fatal(err)
	}
	return &node{d: d, url: "http://" + d.APIAddr(), token: tok, home: h.Dir}
}

// startNetwork makes two stewards (both must approve admissions and
// revocations) and one admitted organization, each a separate daemon.
func startNetwork(t *testing.T) (ana, beto, org *node) {
	t.Helper()
	ctx := context.Background()
	ana, beto, org = startNode(t, "ana"), startNode(t, "beto"), startNode(t, "Colectivo Jurídico Aurora")
	draft, err := ana.d.CreateNetwork(ctx, api.NetworkRequest{Name: "Red Ceiba (prueba)", Threshold: 2, Stewards: []api.PublicKeyDoc{beto.d.PublicKeyDoc()}})
	if err != nil {
		t.Fatal(err)
	}
	signed, err := beto.d.SignDraft(draft.Draft)
	if err != nil {
		t.Fatal(err)
	}
	created, err := ana.d.CreateNetwork(ctx, api.NetworkRequest{Draft: signed.Draft})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := beto.d.AcceptInvite(ctx, api.AcceptRequest{Code: created.JoinCodes[beto.d.Status().Fingerprint]}); err != nil {
		t.Fatal(err)
	}
	inv, err := ana.d.CreateInvite(api.InviteRequest{Role: "member", Expires: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := org.d.AcceptInvite(ctx, api.AcceptRequest{Code: inv.Code, Name: "Colectivo Jurídico Aurora"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Beto sees the admission", func() bool { return pending(beto, "admit") != "" })
	if _, err := beto.d.Approve(ctx, pending(beto, "admit")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the organization is admitted", func() bool { return org.d.Status().Role == "member" })
	return ana, beto, org
}

func pending(n *node, kind string) string {
	ps, _ := n.d.Proposals()
	for _, p := range ps {
		if p.Kind == kind && !p.Effective {
			return p.ID
		}
	}
	return ""
}

func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// reloadUntil reloads u until the text of sel satisfies ok: pages do not
// refresh themselves, so a person would reload too.
func (b *browser) reloadUntil(ctx context.Context, u, sel, what string, ok func(string) bool) string {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		b.run(ctx, chromedp.Navigate(u), chromedp.WaitVisible(chromedp.CSS(sel)))
		got := b.text(ctx, sel)
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out waiting: %s; last text %q", what, got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (b *browser) signIn(ctx context.Context, n *node) {
	b.t.Helper()
	b.run(ctx,
		chromedp.Navigate(n.url+"/login"),
		chromedp.WaitVisible(chromedp.CSS("#token")),
		chromedp.SendKeys(chromedp.CSS("#token"), n.token),
		chromedp.Submit(chromedp.CSS("#token")),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/logout"]`)),
	)
}

// TestBrowserEndToEnd drives three real daemons through their web UIs:
// an organization publishes through the form, a steward's node finds it
// in Spanish without accents, shows it, and two stewards revoke the
// organization until its entries vanish everywhere. It also writes the
// README's screenshots.
func TestBrowserEndToEnd(t *testing.T) {
	ana, beto, org := startNetwork(t)
	ctx := context.Background()
	// Two more services, published through the API, so the pages show a
	// directory rather than a single entry.
	for _, e := range sampleEntries(time.Now())[1:] {
		if _, err := org.d.Publish(ctx, api.PublishRequest{ID: e.ID, Service: e.Service}); err != nil {
			t.Fatal(err)
		}
	}
	b := newBrowser(t)

	// The organization creates its entry through the form.
	orgTab := b.tab("es-MX,es;q=0.9")
	b.signIn(orgTab, org)
	b.run(orgTab,
		chromedp.Navigate(org.url+"/org/edit"),
		chromedp.WaitVisible(chromedp.CSS("#name")),
		chromedp.SendKeys(chromedp.CSS("#name"), "Asesoría jurídica para personas defensoras"),
		chromedp.SetValue(chromedp.CSS("#description"), "Acompañamiento legal en trámites de asilo, refugio y protección complementaria.\nPrimera consulta gratuita y confidencial."),
		chromedp.Click(chromedp.CSS(`input[name="categories"][value="legal"]`)),
		chromedp.Click(chromedp.CSS(`input[name="categories"][value="migration"]`)),
		chromedp.SendKeys(chromedp.CSS("#languages"), "es, en"),
		chromedp.SetValue(chromedp.CSS(`input[name="area0_city"]`), "Ciudad de México"),
		chromedp.SendKeys(chromedp.CSS(`input[name="area0_country"]`), "MX"),
		chromedp.SendKeys(chromedp.CSS(`input[name="contact0_value"]`), "+52 55 1234 5678"),
		chromedp.Click(chromedp.CSS(`input[name="contact0_preferred"]`)),
		chromedp.SetValue(chromedp.CSS(`select[name="contact1_kind"]`), "email"),
		chromedp.SendKeys(chromedp.CSS(`input[name="contact1_value"]`), "asesoria@aurora.example"),
		chromedp.SetValue(chromedp.CSS("#schedules"), "lun a vie 9:00–18:00"),
		chromedp.SetValue(chromedp.CSS("#eligibility"), "Personas defensoras de derechos humanos en el exilio y sus familias."),
		chromedp.SetValue(chromedp.CSS("#fees"), "Gratuito"),
		chromedp.SetValue(chromedp.CSS("#intake_response_time"), "48 horas"),
		chromedp.Click(chromedp.CSS(`button[value="publish"]`)),
		chromedp.WaitVisible(chromedp.CSS("p.notice.ok")),
	)
	if got := b.text(orgTab, "h1"); got != "Asesoría jurídica para personas defensoras" {
		t.Fatalf("after publishing through the form: %q", got)
	}

	// The steward's node, in Spanish: "asesoria" finds "Asesoría".
	es := b.tab("es-MX,es;q=0.9")
	search := ana.url + "/?q=" + url.QueryEscape("asesoria")
	b.reloadUntil(es, search, "main", "the entry reaches Ana's node", func(s string) bool {
		return strings.Contains(s, "Asesoría jurídica para personas defensoras")
	})
	if got := b.text(es, ".statusbar"); !strings.Contains(got, "En línea") || !strings.Contains(got, "Copia local al día") {
		t.Errorf("status bar: %q", got)
	}
	if got := b.text(es, "ol.results"); !strings.Contains(got, "Colectivo Jurídico Aurora") || !strings.Contains(got, "Asesoría legal") {
		t.Errorf("result lacks its organization or category: %q", got)
	}
	b.screenshot(es, "search-es.png")
	b.run(es, chromedp.Click(chromedp.CSS("ol.results h3 a")), chromedp.WaitVisible(chromedp.CSS("section.trust")))
	if got := b.text(es, "section.trust"); !strings.Contains(got, "Verificado: lo firmó Colectivo Jurídico Aurora") {
		t.Errorf("verification on a real node: %q", got)
	}
	if got := b.attr(es, `a[href^="https://signal.me/"]`, "href"); got != "https://signal.me/#p/+525512345678" {
		t.Errorf("Signal link %q", got)
	}
	if got := b.attr(es, `a[href^="mailto:"]`, "href"); got != "mailto:asesoria@aurora.example" {
		t.Errorf("mail link %q", got)
	}
	b.screenshot(es, "detail-es.png")

	en := b.tab("en-GB,en;q=0.9")
	b.reloadUntil(en, ana.url+"/", "main", "all four services on Ana's node", func(s string) bool {
		return strings.Contains(s, "4 services")
	})
	b.screenshot(en, "search-en.png")
	// The status bar's reachability label leads to why and what to do,
	// translated from the real daemon's reason code.
	b.run(en, chromedp.Click(chromedp.CSS(".statusbar a.reach")))
	b.waitLocation(en, "/network")
	if got := b.text(en, "main"); !strings.Contains(got, "How other nodes reach this one") || !strings.Contains(got, "What to do") || strings.Contains(got, "reach.") {
		t.Errorf("network page on a real node: %q", got)
	}

	// Ana proposes the revocation in her UI; Beto approves it in his.
	stewardA := b.tab("es")
	b.signIn(stewardA, ana)
	b.run(stewardA,
		chromedp.Navigate(ana.url+"/steward"),
		chromedp.WaitVisible(chromedp.CSS("#fingerprint")),
		chromedp.SendKeys(chromedp.CSS("#fingerprint"), org.d.Status().Fingerprint),
		chromedp.SendKeys(chromedp.CSS("#reason"), "equipo incautado"),
		chromedp.Click(chromedp.CSS(`input[name="confirm"]`)),
		chromedp.Click(chromedp.CSS(`form[action="/steward/revoke"] button`)),
		chromedp.WaitVisible(chromedp.CSS("p.notice.ok")),
	)
	if got := b.text(stewardA, "p.notice.ok"); !strings.Contains(got, "Revocación propuesta") {
		t.Fatalf("after proposing: %q", got)
	}
	if es, _ := ana.d.Search(directory.Query{Text: "asesoria"}); len(es) != 1 {
		t.Fatal("one steward's proposal alone removed the entry")
	}
	stewardB := b.tab("es")
	b.signIn(stewardB, beto)
	b.reloadUntil(stewardB, beto.url+"/steward", "main", "the proposal reaches Beto", func(s string) bool {
		return strings.Contains(s, "Revocar una clave") && strings.Contains(s, "equipo incautado") && strings.Contains(s, "Aprobaciones: 1 de 2")
	})
	b.run(stewardB,
		chromedp.Click(chromedp.CSS(`form[action="/steward/approve"] button`)),
		chromedp.WaitVisible(chromedp.CSS("p.notice.ok")),
	)

	// The entries disappear from every node's UI.
	for _, n := range []*node{ana, beto} {
		b.reloadUntil(es, n.url+"/?q=asesoria", "main", "the revoked entries vanish", func(s string) bool {
			return strings.Contains(s, "Ningún servicio encontrado") && !strings.Contains(s, "Asesoría jurídica")
		})
		b.reloadUntil(es, n.url+"/", "h2.count", "the revoked organization's other entries vanish", func(s string) bool {
			return strings.Contains(s, "Ningún servicio encontrado")
		})
	}
	b.checkClean(ana.url, beto.url, org.url)
}

// TestDaemonMountsUI checks the UI behind the daemon's own Host, Origin
// and header handling, on a daemon that has not joined a network yet.
func TestDaemonMountsUI(t *testing.T) {
	n := startNode(t, "solo")
	get := func(path, host string, hdr map[string]string) (int, string, http.Header) {
		req, _ := http.NewRequest(http.MethodGet, n.url+path, nil)
		if host != "" {
			req.Host = host
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	code, body, h := get("/", "", map[string]string{"Accept-Language": "es"})
	if code != http.StatusOK || !strings.Contains(body, "Este nodo aún no se ha unido a una red") {
		t.Fatalf("UI home on the daemon: status %d", code)
	}
	if !strings.HasPrefix(h.Get("Content-Security-Policy"), "default-src 'self'") || h.Get("Referrer-Policy") != "same-origin" || h.Get("Cache-Control") != "no-store" {
		t.Errorf("headers: %v", h)
	}
	if code, body, _ := get("/v1/status", "", nil); code != http.StatusOK || !strings.Contains(body, `"fingerprint"`) {
		t.Errorf("the API moved: status %d", code)
	}
	_, port, _ := strings.Cut(strings.TrimPrefix(n.url, "http://"), ":")
	if code, _, _ := get("/", "ceiba.evil.example:"+port, nil); code != http.StatusMisdirectedRequest {
		t.Errorf("foreign Host: status %d, want 421", code)
	}
	post := func(path string, hdr map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, n.url+path, strings.NewReader("token="+n.token))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/org/edit", nil); code != http.StatusUnauthorized {
		t.Errorf("write without a session: status %d, want 401", code)
	}
	if code := post("/login", map[string]string{"Origin": "http://evil.example"}); code != http.StatusForbidden {
		t.Errorf("cross-origin sign-in: status %d, want 403", code)
	}
	if code := post("/login", nil); code != http.StatusForbidden {
		t.Errorf("sign-in without the form's cookie: status %d, want 403", code)
	}
}
