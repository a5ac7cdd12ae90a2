package webui_test

import (
	"bytes"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/webui"
)

const testToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// client is a browser stand-in: it keeps cookies and does not follow
// redirects, so tests see each answer.
type client struct {
	t    *testing.T
	base string
	hc   *http.Client
	lang string
}

func newClient(t *testing.T, srv *httptest.Server, lang string) *client {
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return &client{t: t, base: srv.URL, hc: hc, lang: lang}
}

func (c *client) do(req *http.Request) (int, string, http.Header) {
	c.t.Helper()
	if c.lang != "" {
		req.Header.Set("Accept-Language", c.lang)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (c *client) get(path string) (int, string, http.Header) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, c.base+path, nil)
	return c.do(req)
}

func (c *client) post(path string, form url.Values) (int, string, http.Header) {
	c.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, c.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return c.do(req)
}

var hiddenRe = regexp.MustCompile(`name="(csrf|form)" value="([^"]+)"`)

func hidden(t *testing.T, body, name string) string {
	t.Helper()
	for _, m := range hiddenRe.FindAllStringSubmatch(body, -1) {
		if m[1] == name {
			return html.UnescapeString(m[2])
		}
	}
	t.Fatalf("no hidden field %q in page", name)
	return ""
}

// signIn signs the client in and returns the session's CSRF token.
func (c *client) signIn() string {
	c.t.Helper()
	_, body, _ := c.get("/login")
	code, _, h := c.post("/login", url.Values{"form": {hidden(c.t, body, "form")}, "token": {testToken}})
	if code != http.StatusSeeOther {
		c.t.Fatalf("sign in: status %d", code)
	}
	_, body, _ = c.get(h.Get("Location"))
	return hidden(c.t, body, "csrf")
}

func newServer(t *testing.T, f *fakeNode) *httptest.Server {
	srv := httptest.NewServer(webui.New(f, testToken))
	t.Cleanup(srv.Close)
	return srv
}

func TestSearchSpanishFoldsAccents(t *testing.T) {
	srv := newServer(t, newFake(t, false))
	c := newClient(t, srv, "es-MX,es;q=0.9,en;q=0.5")
	code, body, h := c.get("/?q=asesoria")
	if code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	for _, want := range []string{
		`<html lang="es"`,
		"Asesoría jurídica para personas defensoras", // found without the accent
		"Asesoría legal",            // category, translated
		"Colectivo Jurídico Aurora", // signing organization
		"Verificado por última vez", // last verified label
		"En línea",                  // status bar
		"conectado a 2 nodos",       // plural
		"Copia local al día",
		">English<", // the language switch
	} {
		if !strings.Contains(body, want) {
			t.Errorf("Spanish search page lacks %q", want)
		}
	}
	if strings.Contains(body, "Albergue temporal") {
		t.Error("a search for asesoria also listed the shelter")
	}
	if got := h.Get("Content-Security-Policy"); !strings.HasPrefix(got, "default-src 'self'") {
		t.Errorf("Content-Security-Policy = %q", got)
	}
	if got := h.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", got)
	}
}

func TestLanguageNegotiationAndSwitch(t *testing.T) {
	srv := newServer(t, newFake(t, false))
	en := newClient(t, srv, "fr-FR,fr;q=0.9")
	if _, body, _ := en.get("/"); !strings.Contains(body, `<html lang="en"`) || !strings.Contains(body, "Find a trusted service") {
		t.Error("a French browser did not get the English fallback")
	}
	// The switch link sets a cookie that wins over Accept-Language.
	_, body, h := en.get("/?lang=es")
	if !strings.Contains(body, "Busca un servicio de confianza") || !strings.Contains(h.Get("Set-Cookie"), "lang=es") {
		t.Fatal("?lang=es did not switch to Spanish and remember it")
	}
	if _, body, _ := en.get("/entry?ref=nothing"); !strings.Contains(body, "Entrada no encontrada") {
		t.Error("the remembered language was not used on the next page")
	}
	es := newClient(t, srv, "es")
	if _, body, _ := es.get("/"); !strings.Contains(body, "Albergue temporal Casa Ceiba") || !strings.Contains(body, "Albergue") {
		t.Error("the Spanish home page does not list all services")
	}
}

func TestForeignHostRefused(t *testing.T) {
	srv := newServer(t, newFake(t, false))
	u, _ := url.Parse(srv.URL)
	_, port, _ := strings.Cut(u.Host, ":")
	for _, host := range []string{"evil.example", "evil.example:" + port, "127.0.0.1.nip.io:" + port, "127.0.0.1:1", "10.0.0.1:" + port} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMisdirectedRequest {
			t.Errorf("Host %q: status %d, want 421", host, resp.StatusCode)
		}
	}
	for _, host := range []string{"127.0.0.1:" + port, "localhost:" + port} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+"/", nil)
		req.Host = host
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("Host %q: status %d, want 200", host, resp.StatusCode)
		}
	}
}

func TestWritesNeedSessionAndCSRF(t *testing.T) {
	f := newFake(t, false)
	srv := newServer(t, f)
	entries := func() int { es, _ := f.Mine(); return len(es) }
	before := entries()
	form := url.Values{"name": {"Servicio falso"}, "status": {"active"}, "categories": {"legal"}, "languages": {"es"},
		"contact_rows": {"1"}, "contact0_kind": {"signal"}, "contact0_value": {"+52 55 0000 0000"}, "expires_days": {"30"}}

	anon := newClient(t, srv, "en")
	if code, _, _ := anon.post("/org/edit", form); code != http.StatusUnauthorized {
		t.Errorf("write without a session: status %d, want 401", code)
	}
	if code, _, h := anon.get("/org"); code != http.StatusSeeOther || !strings.HasPrefix(h.Get("Location"), "/login") {
		t.Errorf("org page without a session: status %d to %q, want a redirect to /login", code, h.Get("Location"))
	}
	// A wrong token does not sign in; a login form without its cookie
	// pairing is refused too.
	_, body, _ := anon.get("/login")
	if code, _, _ := anon.post("/login", url.Values{"form": {hidden(t, body, "form")}, "token": {"wrong"}}); code != http.StatusForbidden {
		t.Errorf("wrong token: status %d, want 403", code)
	}
	other := newClient(t, srv, "en")
	if code, _, _ := other.post("/login", url.Values{"form": {hidden(t, body, "form")}, "token": {testToken}}); code != http.StatusForbidden {
		t.Errorf("login without the form cookie: status %d, want 403", code)
	}

	c := newClient(t, srv, "en")
	csrf := c.signIn()
	if code, _, _ := c.post("/org/edit", form); code != http.StatusForbidden {
		t.Errorf("write without a CSRF token: status %d, want 403", code)
	}
	form.Set("csrf", "not-"+csrf)
	if code, _, _ := c.post("/org/edit", form); code != http.StatusForbidden {
		t.Errorf("write with a wrong CSRF token: status %d, want 403", code)
	}
	if entries() != before {
		t.Fatal("a refused write changed the directory")
	}

	// A cross-site form post carries the browser's Origin and is refused
	// even with a valid session and token.
	form.Set("csrf", csrf)
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/org/edit", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if code, _, _ := c.do(req); code != http.StatusForbidden {
		t.Errorf("cross-origin write: status %d, want 403", code)
	}

	code, _, h := c.post("/org/edit", form)
	if code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "done=published") {
		t.Fatalf("write with session and CSRF token: status %d to %q", code, h.Get("Location"))
	}
	if entries() != before+1 {
		t.Fatal("the accepted write did not publish")
	}
	// The session cookie holds a random id, never the token.
	for _, ck := range c.hc.Jar.Cookies(mustURL(srv.URL)) {
		if strings.Contains(ck.Value, testToken) {
			t.Errorf("cookie %s carries the API token", ck.Name)
		}
	}

	// Signing out ends the session on the server.
	if code, _, _ := c.post("/logout", url.Values{"csrf": {csrf}}); code != http.StatusSeeOther {
		t.Fatalf("logout: status %d", code)
	}
	if code, _, _ := c.post("/org/edit", form); code != http.StatusUnauthorized {
		t.Errorf("write after logout: status %d, want 401", code)
	}
}

func mustURL(s string) *url.URL { u, _ := url.Parse(s); return u }

func TestFieldErrorsNextToFields(t *testing.T) {
	f := newFake(t, false)
	srv := newServer(t, f)
	c := newClient(t, srv, "es")
	csrf := c.signIn()
	form := url.Values{"csrf": {csrf}, "name": {"Refugio"}, "status": {"active"}, "categories": {"shelter"}, "languages": {"es"},
		"area_rows": {"3"}, "area0_city": {"Quito"}, "area2_city": {"Lima"}, "area2_country": {"Perú"},
		"contact_rows": {"1"}, "contact0_kind": {"signal"}, "contact0_value": {"+593 99 000 0000"}, "expires_days": {"30"}}
	code, body, _ := c.post("/org/edit", form)
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("invalid country: status %d, want 422", code)
	}
	// The second filled area is form row 2 (row 1 was empty): the error
	// must sit on that row's country box, in Spanish.
	if !regexp.MustCompile(`name="area2_country" value="PERÚ"[^>]*class="invalid"`).MatchString(body) {
		t.Error("the country box of row 2 is not marked invalid")
	}
	if !strings.Contains(body, "Usa el código de dos letras del país") || !strings.Contains(body, "Hay campos por corregir") {
		t.Error("the Spanish field hint is missing")
	}
	if !strings.Contains(body, `value="Refugio"`) {
		t.Error("the form lost what was typed")
	}

	form.Set("area2_country", "PE")
	form.Set("name", "")
	_, body, _ = c.post("/org/edit", form)
	if !regexp.MustCompile(`name="name" value=""[^>]*class="invalid"`).MatchString(body) || !strings.Contains(body, "Escribe un nombre de 1 a 200 caracteres") {
		t.Error("an empty name is not flagged next to the name box")
	}

	form.Set("name", "Refugio")
	form.Del("categories")
	_, body, _ = c.post("/org/edit", form)
	if !strings.Contains(body, "Marca entre 1 y 8 necesidades") {
		t.Error("missing categories are not flagged")
	}

	// CRLF from a textarea is not a control character to the directory.
	form.Set("categories", "shelter")
	form.Set("description", "Línea uno\r\nLínea dos")
	if code, _, _ := c.post("/org/edit", form); code != http.StatusSeeOther {
		t.Fatalf("valid entry with a multi-line description: status %d", code)
	}
	e, err := f.Show("entry/" + f.org.Public().Hex() + "/refugio")
	if err != nil || e.Service.Description != "Línea uno\nLínea dos" || e.Service.Areas[1].Country != "PE" {
		t.Fatalf("published entry: %v %+v", err, e.Service)
	}
}

func TestEditAndDelete(t *testing.T) {
	f := newFake(t, false)
	srv := newServer(t, f)
	c := newClient(t, srv, "en")
	csrf := c.signIn()
	code, body, _ := c.get("/org/edit?id=albergue")
	if code != http.StatusOK || !strings.Contains(body, `value="Albergue temporal Casa Ceiba"`) || !strings.Contains(body, `value="Bogotá"`) {
		t.Fatalf("edit form does not show the entry (status %d)", code)
	}
	// Re-post the form as shown, with one change.
	form := formValues(body)
	form.Set("csrf", csrf)
	form.Set("name", "Casa Ceiba shelter")
	if code, _, _ := c.post("/org/edit", form); code != http.StatusSeeOther {
		t.Fatalf("edit: status %d", code)
	}
	e, _ := f.Show("entry/" + f.org.Public().Hex() + "/albergue")
	if e.Seq != 2 || e.Service.Name != "Casa Ceiba shelter" || e.Service.Areas[0].City != "Bogotá" || e.Service.Contacts[1].Kind != "web" || !e.Service.Intake.Always {
		t.Fatalf("edited entry: seq %d %+v", e.Seq, e.Service)
	}
	if code, body, _ := c.get("/org/delete?id=albergue"); code != http.StatusOK || !strings.Contains(body, "Casa Ceiba shelter") {
		t.Fatalf("delete confirmation: status %d", code)
	}
	if code, _, _ := c.post("/org/delete", url.Values{"csrf": {csrf}, "id": {"albergue"}}); code != http.StatusSeeOther {
		t.Fatalf("delete: status %d", code)
	}
	if es, _ := f.Search(directory.Query{Text: "casa ceiba"}); len(es) != 0 {
		t.Fatal("deleted entry still found")
	}
	_, body, _ = c.get("/org")
	if !strings.Contains(body, "Deleted") || !strings.Contains(body, "Publish again") {
		t.Error("the organization page does not show the deletion")
	}
}

var inputRe = regexp.MustCompile(`<(input|select|textarea)[^>]*name="([^"]+)"[^>]*>`)

// formValues reads what a browser would submit from a rendered form: text
// inputs, checked boxes, selected options and textareas.
func formValues(body string) url.Values {
	v := url.Values{}
	for _, m := range inputRe.FindAllStringSubmatchIndex(body, -1) {
		tag, name := body[m[2]:m[3]], body[m[4]:m[5]]
		el := body[m[0]:m[1]]
		switch tag {
		case "input":
			if strings.Contains(el, `type="checkbox"`) && !strings.Contains(el, " checked") {
				continue
			}
			if strings.Contains(el, `type="submit"`) {
				continue
			}
			val := regexp.MustCompile(`value="([^"]*)"`).FindStringSubmatch(el)
			if val != nil {
				v.Add(name, html.UnescapeString(val[1]))
			} else {
				v.Add(name, "")
			}
		case "select":
			end := strings.Index(body[m[1]:], "</select>")
			sel := regexp.MustCompile(`<option value="([^"]*)" selected`).FindStringSubmatch(body[m[1] : m[1]+end])
			if sel != nil {
				v.Set(name, html.UnescapeString(sel[1]))
			}
		case "textarea":
			end := strings.Index(body[m[1]:], "</textarea>")
			v.Set(name, html.UnescapeString(body[m[1]:m[1]+end]))
		}
	}
	return v
}

func TestInviteQRStaysInSession(t *testing.T) {
	srv := newServer(t, newFake(t, false))
	c := newClient(t, srv, "es")
	csrf := c.signIn()
	code, body, _ := c.post("/org/invite", url.Values{"csrf": {csrf}, "days": {"7"}})
	if code != http.StatusOK || !strings.Contains(body, "ceiba-invite:") || !strings.Contains(body, "Este código es secreto") {
		t.Fatalf("invite page: status %d", code)
	}
	m := regexp.MustCompile(`<img src="(/org/invite/qr\?i=[^"]+)"`).FindStringSubmatch(body)
	if m == nil {
		t.Fatal("no QR image on the invite page")
	}
	qr := html.UnescapeString(m[1])
	if strings.Contains(qr, "ceiba-invite") {
		t.Fatal("the secret code is in the QR image's URL")
	}
	code, png, h := c.get(qr)
	if code != http.StatusOK || h.Get("Content-Type") != "image/png" || !bytes.HasPrefix([]byte(png), []byte("\x89PNG")) {
		t.Fatalf("QR image: status %d, type %q", code, h.Get("Content-Type"))
	}
	if code, _, _ := newClient(t, srv, "es").get(qr); code != http.StatusSeeOther {
		t.Errorf("QR image without the session: status %d, want a redirect to sign in", code)
	}
}

func TestStewardRevokes(t *testing.T) {
	f := newFake(t, true)
	srv := newServer(t, f)
	c := newClient(t, srv, "es")
	csrf := c.signIn()
	_, body, _ := c.get("/steward")
	for _, want := range []string{"Estado de la red", "Nodos conectados", "Revocar una clave", "Al día hasta"} {
		if !strings.Contains(body, want) {
			t.Errorf("steward page lacks %q", want)
		}
	}
	fp := f.org.Fingerprint()
	// Without the confirmation box nothing is proposed.
	if code, body, _ := c.post("/steward/revoke", url.Values{"csrf": {csrf}, "fingerprint": {fp}, "reason": {"equipo incautado"}}); code != http.StatusUnprocessableEntity || !strings.Contains(body, "Marca la casilla") {
		t.Fatalf("revoke without confirming: status %d", code)
	}
	if f.st.IsRevoked(f.org.Public()) {
		t.Fatal("revoked without confirmation")
	}
	if code, _, h := c.post("/steward/revoke", url.Values{"csrf": {csrf}, "fingerprint": {fp}, "reason": {"equipo incautado"}, "confirm": {"1"}}); code != http.StatusSeeOther || !strings.Contains(h.Get("Location"), "done=proposed") {
		t.Fatalf("revoke: status %d", code)
	}
	if !f.st.IsRevoked(f.org.Public()) {
		t.Fatal("the revocation did not take effect")
	}
	if _, body, _ := c.get("/?q=asesoria"); strings.Contains(body, "Asesoría jurídica para personas defensoras") {
		t.Error("entries of a revoked organization are still listed")
	}
	// Errors from the daemon land next to the fingerprint box.
	if code, body, _ := c.post("/steward/revoke", url.Values{"csrf": {csrf}, "fingerprint": {"nonsense"}, "confirm": {"1"}}); code != http.StatusUnprocessableEntity || !strings.Contains(body, "No se pudo proponer la revocación") {
		t.Errorf("bad fingerprint: status %d", code)
	}
}

func TestRolesGatePages(t *testing.T) {
	srv := newServer(t, newFake(t, false)) // a member, not a steward
	c := newClient(t, srv, "en")
	c.signIn()
	if code, body, _ := c.get("/steward"); code != http.StatusForbidden || !strings.Contains(body, "Only a steward") {
		t.Errorf("steward page for a member: status %d", code)
	}
}

func TestNoExternalReferences(t *testing.T) {
	f := newFake(t, false)
	srv := newServer(t, f)
	c := newClient(t, srv, "es")
	c.signIn()
	key := "entry/" + f.org.Public().Hex() + "/asesoria"
	// Every resource a page loads (stylesheets, scripts, images) is on
	// this node; the only external address is the signal.me link, which
	// is a link a person may follow, not a load. A reference that is
	// only a query ("?lang=en", the language switch) stays on the page.
	res := regexp.MustCompile(`(?:src|href)="([^"]+)"`)
	for _, path := range []string{"/", "/?q=albergue", "/entry?ref=" + url.QueryEscape(key), "/login", "/org", "/org/edit", "/org/invite"} {
		code, body, h := c.get(path)
		if code != http.StatusOK {
			t.Errorf("%s: status %d", path, code)
			continue
		}
		if h.Get("Content-Security-Policy") == "" || h.Get("X-Frame-Options") != "DENY" {
			t.Errorf("%s: missing security headers", path)
		}
		for _, m := range res.FindAllStringSubmatch(body, -1) {
			ref := html.UnescapeString(m[1])
			if strings.HasPrefix(ref, "/") && !strings.HasPrefix(ref, "//") || strings.HasPrefix(ref, "?") || strings.HasPrefix(ref, "tel:") || strings.HasPrefix(ref, "mailto:") || strings.HasPrefix(ref, "https://signal.me/#p/") {
				continue
			}
			t.Errorf("%s refers to %q", path, ref)
		}
		if strings.Contains(body, "style=") || regexp.MustCompile(`<script>|<script [^s]`).MatchString(body) {
			t.Errorf("%s has inline style or script, which the CSP blocks", path)
		}
	}
}

// Every page's status bar names the node's reachability in words and
// links to a page, open to members and readers alike, that says why and
// what to do, in the person's language.
func TestReachabilityInPersonsLanguage(t *testing.T) {
	f := newFake(t, false)
	f.setReach("unreachable", "unreachable-no-relay", 0)
	srv := newServer(t, f)
	for _, c := range []struct {
		accept, label, why, fix string
		not                     []string
	}{
		{"es-MX,es;q=0.9", "Otros nodos no pueden conectarse a este",
			"otros nodos intentaron conectarse y no pudieron, y no tiene ningún relé",
			"Añade la dirección de un relé a [node] relays en config.toml, o pide a una persona custodia",
			[]string{"behind a router", "Add a relay", "reach."}},
		{"en-US,en;q=0.9", "Other nodes cannot connect to this one",
			"other nodes tried and could not connect to it, and it has no relay",
			"Add a relay address to [node] relays in config.toml, or ask a steward to run a node on a server with the vps profile and list it in the charter's relays.",
			[]string{"detrás de un router", "Añade", "reach."}},
	} {
		cl := newClient(t, srv, c.accept)
		_, body, _ := cl.get("/")
		if !strings.Contains(body, `href="/network">`+c.label+`</a>`) {
			t.Errorf("%s: the status bar lacks the reachability link %q", c.accept, c.label)
		}
		code, body, _ := cl.get("/network")
		if code != http.StatusOK {
			t.Fatalf("%s: /network status %d", c.accept, code)
		}
		text := html.UnescapeString(body)
		for _, want := range []string{c.label, c.why, c.fix} {
			if !strings.Contains(text, want) {
				t.Errorf("%s: the network page lacks %q", c.accept, want)
			}
		}
		for _, bad := range c.not {
			if strings.Contains(text, bad) {
				t.Errorf("%s: the network page shows %q", c.accept, bad)
			}
		}
	}

	// A count chooses the plural form; the steward's page shows the same
	// verdict.
	f.setReach("unreachable", "unreachable-relay-pending", 2)
	cl := newClient(t, srv, "es")
	_, body, _ := cl.get("/network")
	if want := "ninguno de los 2 relés configurados le ha dado una plaza"; !strings.Contains(body, want) {
		t.Errorf("the network page lacks %q", want)
	}
	st := newFake(t, true)
	st.setReach("relay", "relayed", 1)
	cl = newClient(t, newServer(t, st), "es")
	cl.signIn()
	_, body, _ = cl.get("/steward")
	for _, want := range []string{"Otros nodos se conectan a través de un relé", "a través de 1 dirección de relé", "No hace falta nada."} {
		if !strings.Contains(body, want) {
			t.Errorf("the steward page lacks %q", want)
		}
	}
}
