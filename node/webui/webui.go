package webui

import (
	"bytes"
	"context"
	"crypto/subtle"
	"embed"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/api"
)

// Backend is what the UI needs from the daemon: the same operations the
// local API exposes. The daemon's *Daemon implements it; webui does not
// import the daemon, because the daemon mounts webui.
type Backend interface {
	Status() api.Status
	Search(q directory.Query) ([]api.Entry, error)
	Show(ref string) (api.Entry, error)
	Mine() ([]api.Entry, error)
	Publish(ctx context.Context, req api.PublishRequest) (api.Entry, error)
	Remove(ctx context.Context, id string) (api.Entry, error)
	CreateInvite(req api.InviteRequest) (api.Invite, error)
	Proposals() ([]api.Proposal, error)
	Approve(ctx context.Context, ref string) (api.Proposal, error)
	Propose(ctx context.Context, req api.ProposeRequest) (api.Proposal, error)
	Rotate(ctx context.Context) (api.Proposal, error)
	// WipeAndStop destroys this home's keys and copy, then stops the
	// daemon (after this request is answered).
	WipeAndStop() error
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// csp keeps every page to this node's own origin. default-src 'self' also
// blocks inline scripts and styles; the other directives do not fall back
// to default-src, so they are spelled out.
const csp = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// maxForm bounds a form body; the largest is an entry with 16 contacts and
// 32 areas, far below this.
const maxForm = 256 << 10

// writeTimeout bounds one publish, approval or revocation started from a
// form, so a stuck network gives the person an answer.
const writeTimeout = 30 * time.Second

type ui struct {
	b        Backend
	token    string
	sessions *sessionStore
	pages    map[string]*template.Template
	mux      *http.ServeMux
	cop      *http.CrossOriginProtection
}

// New returns the web UI. token is the daemon's API token, which people
// type once to sign in; the UI never puts it in a cookie or a page.
func New(b Backend, token string) http.Handler {
	u := &ui{b: b, token: token, sessions: newSessionStore(), cop: http.NewCrossOriginProtection()}
	u.pages = parseTemplates()
	u.routes()
	return u
}

func parseTemplates() map[string]*template.Template {
	base := template.Must(template.ParseFS(templateFS, "templates/layout.html"))
	pages := map[string]*template.Template{}
	names, _ := fs.Glob(templateFS, "templates/*.html")
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		pages[name] = template.Must(template.Must(base.Clone()).ParseFS(templateFS, n))
	}
	return pages
}

func (u *ui) routes() {
	m := http.NewServeMux()
	static, _ := fs.Sub(staticFS, "static")
	m.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	m.HandleFunc("GET /favicon.ico", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })

	m.HandleFunc("GET /{$}", u.search)
	m.HandleFunc("GET /entry", u.entry)
	m.HandleFunc("GET /network", u.network)
	m.HandleFunc("GET /login", u.loginForm)
	m.HandleFunc("POST /login", u.login)
	m.HandleFunc("POST /logout", u.withSession(u.logout))

	m.HandleFunc("GET /org", u.withSession(u.org))
	m.HandleFunc("GET /org/edit", u.withSession(u.editForm))
	m.HandleFunc("POST /org/edit", u.withSession(u.edit))
	m.HandleFunc("GET /org/delete", u.withSession(u.deleteForm))
	m.HandleFunc("POST /org/delete", u.withSession(u.delete))
	m.HandleFunc("GET /org/invite", u.withSession(u.inviteForm))
	m.HandleFunc("POST /org/invite", u.withSession(u.invite))
	m.HandleFunc("GET /org/invite/qr", u.withSession(u.inviteQR))

	m.HandleFunc("GET /wipe", u.withSession(u.wipeForm))
	m.HandleFunc("POST /wipe", u.withSession(u.wipe))

	m.HandleFunc("GET /steward", u.withSession(u.steward))
	m.HandleFunc("POST /steward/approve", u.withSession(u.approve))
	m.HandleFunc("POST /steward/revoke", u.withSession(u.revoke))
	m.HandleFunc("POST /steward/rotate", u.withSession(u.rotate))

	m.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		u.message(w, r, nil, http.StatusNotFound, "notfound.title", "notfound.body")
	})
	u.mux = m
}

func (u *ui) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// The daemon already checks Host; checking again here keeps the UI
	// safe against DNS rebinding even if it is mounted some other way.
	if !localHost(r) {
		http.Error(w, "requests must be addressed to this node's local address", http.StatusMisdirectedRequest)
		return
	}
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: under no-referrer browsers send
	// "Origin: null" with every form post, which the daemon's Origin check
	// (rightly) refuses. Links out of the node still carry no referrer.
	h.Set("Referrer-Policy", "same-origin")
	// no-store: what someone looked up must not stay in the browser's cache.
	h.Set("Cache-Control", "no-store")
	if err := u.cop.Check(r); err != nil {
		u.message(w, r, nil, http.StatusForbidden, "forbidden.title", "forbidden.crossorigin")
		return
	}
	u.mux.ServeHTTP(w, r)
}

// localHost accepts only a loopback name with the port this request came
// in on, which is what a browser sends for the node's own address and
// what a rebound DNS name never is.
func localHost(r *http.Request) bool {
	host, port, err := net.SplitHostPort(r.Host)
	if err != nil {
		return false
	}
	if host != "127.0.0.1" && host != "localhost" && host != "::1" {
		return false
	}
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		_, local, err := net.SplitHostPort(a.String())
		if err != nil || local != port {
			return false
		}
	}
	return true
}

// page is what every template receives.
type page struct {
	*locale
	Title      string
	Nav        string
	Status     api.Status
	SignedIn   bool
	CSRF       string
	LangSwitch string
	Data       any
}

// Online is what the status bar calls connected.
func (p *page) Online() bool { return p.Status.Peers > 0 }

// CanManage says whether this node's key may publish entries.
func (p *page) CanManage() bool {
	return hasRole(p.Status.Role, "member") || hasRole(p.Status.Role, "steward")
}

// IsSteward says whether this node's key is a steward's.
func (p *page) IsSteward() bool { return hasRole(p.Status.Role, "steward") }

// hasRole reads the daemon's role, which joins roles with "+" when a key
// holds several (a steward whose organization is also a member).
func hasRole(roles, role string) bool { return slices.Contains(strings.Split(roles, "+"), role) }

func (u *ui) newPage(w http.ResponseWriter, r *http.Request, ss *session, titleKey string) *page {
	l := newLocale(pickLang(w, r))
	p := &page{locale: l, Status: u.b.Status()}
	p.Title = l.T(titleKey)
	if ss == nil {
		ss = u.currentSession(r)
	}
	if ss != nil {
		p.SignedIn, p.CSRF = true, ss.csrf
	}
	// The switch keeps the page and its query, with the other language. It
	// is relative to the page: a link built from the decoded path turned a
	// request for /%2F%2Fhost/x into href="///host/x?...", another site.
	q := r.URL.Query()
	q.Set("lang", l.Other())
	p.LangSwitch = "?" + q.Encode()
	return p
}

func (u *ui) render(w http.ResponseWriter, status int, name string, p *page) {
	var buf bytes.Buffer
	if err := u.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		http.Error(w, "page failed to render: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// notice is a message box: level is ok, info, warn or danger.
type notice struct {
	Level string
	Text  string
}

type messageData struct {
	Body   string
	Detail string
}

// message renders a page that only says something: not found, refused,
// failed. detail is an error from the daemon, shown as it is.
func (u *ui) message(w http.ResponseWriter, r *http.Request, detail error, status int, titleKey, bodyKey string) {
	p := u.newPage(w, r, nil, titleKey)
	d := messageData{Body: p.T(bodyKey)}
	if detail != nil {
		d.Detail = detail.Error()
	}
	p.Data = d
	u.render(w, status, "message", p)
}

func (u *ui) currentSession(r *http.Request) *session {
	c, err := r.Cookie(cookieName(r, "ceiba_session"))
	if err != nil {
		return nil
	}
	return u.sessions.get(c.Value)
}

// withSession lets through only people signed in with the token, and on
// POST only forms that carry this session's CSRF token.
func (u *ui) withSession(h func(http.ResponseWriter, *http.Request, *session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ss := u.currentSession(r)
		if ss == nil {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			u.message(w, r, nil, http.StatusUnauthorized, "forbidden.title", "forbidden.session")
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if err := r.ParseForm(); err != nil {
				u.message(w, r, nil, http.StatusBadRequest, "forbidden.title", "forbidden.form")
				return
			}
			if !ss.checkCSRF(r.PostForm.Get("csrf")) {
				u.message(w, r, nil, http.StatusForbidden, "forbidden.title", "forbidden.csrf")
				return
			}
		}
		h(w, r, ss)
	}
}

type loginData struct {
	Form  string // the login form's own anti-forgery value
	Next  string
	Error string
}

func (u *ui) loginForm(w http.ResponseWriter, r *http.Request) {
	u.showLogin(w, r, http.StatusOK, "")
}

func (u *ui) showLogin(w http.ResponseWriter, r *http.Request, status int, errKey string) {
	// Before a session exists, a cookie paired with a hidden field stops
	// another site from signing this browser in to a session it chose.
	v := randomToken()
	http.SetCookie(w, &http.Cookie{Name: cookieName(r, "ceiba_login"), Value: v, Path: "/login", HttpOnly: true, SameSite: http.SameSiteStrictMode, MaxAge: 3600})
	p := u.newPage(w, r, nil, "login.title")
	p.Nav = "login"
	d := loginData{Form: v, Next: localPath(r.FormValue("next"))}
	if errKey != "" {
		d.Error = p.T(errKey)
	}
	p.Data = d
	u.render(w, status, "login", p)
}

func (u *ui) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	if err := r.ParseForm(); err != nil {
		u.showLogin(w, r, http.StatusBadRequest, "forbidden.form")
		return
	}
	c, err := r.Cookie(cookieName(r, "ceiba_login"))
	if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get("form"))) != 1 {
		u.showLogin(w, r, http.StatusForbidden, "login.expired")
		return
	}
	got := strings.TrimSpace(r.PostForm.Get("token"))
	if u.token == "" || subtle.ConstantTimeCompare([]byte(got), []byte(u.token)) != 1 {
		u.showLogin(w, r, http.StatusForbidden, "login.wrong")
		return
	}
	id, _ := u.sessions.create()
	// A fresh session on every sign-in: a cookie planted earlier never
	// becomes a signed-in session.
	http.SetCookie(w, &http.Cookie{Name: cookieName(r, "ceiba_session"), Value: id, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.SetCookie(w, &http.Cookie{Name: cookieName(r, "ceiba_login"), Value: "", Path: "/login", MaxAge: -1})
	next := localPath(r.PostForm.Get("next"))
	if next == "" {
		next = "/org"
		if hasRole(u.b.Status().Role, "steward") {
			next = "/steward"
		}
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (u *ui) logout(w http.ResponseWriter, r *http.Request, _ *session) {
	if c, err := r.Cookie(cookieName(r, "ceiba_session")); err == nil {
		u.sessions.end(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName(r, "ceiba_session"), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// localPath accepts a redirect target only if it stays on this node.
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") || strings.ContainsAny(p, "\r\n") {
		return ""
	}
	u, err := url.Parse(p)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return ""
	}
	return p
}
