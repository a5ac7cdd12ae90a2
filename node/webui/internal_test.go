package webui

import (
	"io/fs"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node"
	"github.com/ceiba-network/ceiba/node/api"
)

func TestCatalogsCoverEachOther(t *testing.T) {
	c, err := loadCatalogs()
	if err != nil {
		t.Fatal(err)
	}
	for a, b := range map[string]string{"en": "es", "es": "en"} {
		for k := range c.keys[a] {
			if !c.keys[b][k] {
				t.Errorf("key %q is in %s.json but not in %s.json", k, a, b)
			}
		}
	}
}

// Every key the code and templates name literally, and every key built
// from a closed list, exists in the catalogs.
func TestCatalogsHaveEveryKey(t *testing.T) {
	c, _ := loadCatalogs()
	var used []string
	lit := regexp.MustCompile(`\bT\(?\s*"([a-z][a-z0-9_.\-]+)"`)
	prefixed := regexp.MustCompile(`"((?:login|forbidden|notfound|entry|search|org|edit|delete|invite|steward)\.[a-z0-9_.\-]+)"`)
	scan := func(name string, data []byte) {
		for _, m := range lit.FindAllStringSubmatch(string(data), -1) {
			used = append(used, m[1])
		}
		if strings.HasSuffix(name, ".go") {
			for _, m := range prefixed.FindAllStringSubmatch(string(data), -1) {
				used = append(used, m[1])
			}
		}
	}
	fs.WalkDir(templateFS, "templates", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := templateFS.ReadFile(p)
			scan(p, b)
		}
		return nil
	})
	entries, _ := os.ReadDir(".")
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".go") && !strings.HasSuffix(e.Name(), "_test.go") {
			b, _ := os.ReadFile(e.Name())
			scan(e.Name(), b)
		}
	}
	for _, v := range directory.Categories {
		used = append(used, "cat."+v)
	}
	for _, v := range directory.Statuses {
		used = append(used, "svcstatus."+v)
	}
	for _, v := range directory.ContactKinds {
		used = append(used, "kind."+v)
	}
	for _, v := range filterLanguages {
		used = append(used, "langname."+v)
	}
	for _, v := range countries {
		used = append(used, "country."+v)
	}
	for _, v := range []string{"steward", "member", "reader", "pending", "revoked", "none"} {
		used = append(used, "role."+v)
	}
	for _, v := range []string{"admit", "revoke", "charter", "epoch", "other"} {
		used = append(used, "proposal."+v)
	}
	for _, k := range monthKeys {
		used = append(used, k)
	}
	for _, s := range []node.ReachState{node.ReachPublic, node.ReachRelay, node.ReachUnreachable, node.ReachUnknown} {
		used = append(used, "reach.state."+string(s))
	}
	for _, r := range node.ReachReasons {
		used = append(used, "reach.why."+string(r), "reach.fix."+string(r))
	}
	for _, k := range doneKeys {
		used = append(used, k)
	}
	// Every field directory can name maps to a hint.
	fields := []string{"name", "description", "status", "categories", "languages", "schedules", "eligibility",
		"application_process", "fees", "alert", "last_verified", "areas", "contacts", "intake.first_contact",
		"intake.response_time", "areas[0]", "areas[0].city", "areas[0].country", "areas[0].text",
		"contacts[0].kind", "contacts[0].value", "contacts[0].languages", "contacts[0].pgp", "areas[5]", "contacts[5].value"}
	for _, f := range fields {
		name, hint := formField(f, []int{0}, []int{0})
		if name == "" {
			t.Errorf("directory field %q has no form field", f)
		}
		used = append(used, "hint."+hint)
	}
	used = append(used, "hint.expires_days")
	sort.Strings(used)
	for _, k := range used {
		if strings.HasSuffix(k, ".") {
			continue // a prefix the code completes; covered above
		}
		for lang := range uiLangs {
			if !c.keys[lang][k] {
				t.Errorf("%s.json lacks %q", lang, k)
			}
		}
	}
	if len(used) < 100 {
		t.Fatalf("found only %d keys in use; the scan is broken", len(used))
	}
}

func TestNegotiate(t *testing.T) {
	for accept, want := range map[string]string{
		"":                          "en",
		"es":                        "es",
		"es-MX,es;q=0.9,en;q=0.8":   "es",
		"es-419":                    "es",
		"en-US,en;q=0.9,es;q=0.8":   "en",
		"fr-FR,fr;q=0.9":            "en",
		"fr-FR,fr;q=0.9,es;q=0.5":   "es",
		"pt-BR, en;q=0.3, es;q=0.7": "es",
		"garbage;;;":                "en",
	} {
		if got := negotiate(accept); got != want {
			t.Errorf("negotiate(%q) = %s, want %s", accept, got, want)
		}
	}
}

func TestLocalizedFormats(t *testing.T) {
	es, en := newLocale("es"), newLocale("en")
	day := time.Date(2026, 11, 26, 14, 5, 0, 0, time.UTC)
	for _, c := range []struct{ got, want string }{
		{es.Day(day), "26 de noviembre de 2026"},
		{en.Day(day), "November 26, 2026"},
		{es.DayString("2026-03-01"), "1 de marzo de 2026"},
		{es.Num(12345), "12.345"},
		{en.Num(12345), "12,345"},
		{es.T("search.count", 0), "Ningún servicio encontrado"},
		{es.T("search.count", 1), "1 servicio"},
		{es.T("search.count", 3), "3 servicios"},
		{en.T("search.count", 1), "1 service"},
		{es.T("status.peers", 1), "conectado a 1 nodo"},
		{es.Cat("legal"), "Asesoría legal"},
		{es.Cat("shelter"), "Albergue"},
		{es.Cat("psychosocial"), "Apoyo psicosocial"},
		{es.Cat("digital-security"), "Seguridad digital"},
		{en.Cat("legal"), "Legal aid"},
		{es.Cat("from-the-future"), "from-the-future"},
		{es.LangName("en"), "inglés"},
		{es.Country("MX"), "México"},
		{es.Ago(time.Now().Add(-3 * time.Minute)), "hace 3 minutos"},
		{en.Ago(time.Now().Add(-1 * time.Hour)), "1 hour ago"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	if s := es.DateTime(day); !strings.HasPrefix(s, es.Day(day.Local())) {
		t.Errorf("DateTime = %q", s)
	}
}

func TestSlug(t *testing.T) {
	for name, want := range map[string]string{
		"Asesoría jurídica para personas defensoras": "asesoria-juridica-para-personas-defensoras",
		"  ¡Albergue «Ñandú»! ":                      "albergue-nandu",
		"Apoyo 24/7":                                 "apoyo-24-7",
		"¿?":                                         "servicio",
		"日本語":                                        "servicio",
	} {
		if got := slug(name); got != want {
			t.Errorf("slug(%q) = %q, want %q", name, got, want)
		}
	}
	long := slug(strings.Repeat("palabra ", 40))
	if len(long) > 56 || strings.HasSuffix(long, "-") || !strings.HasSuffix(long, "palabra") {
		t.Errorf("long slug %q", long)
	}
	taken := map[string]bool{"albergue": true, "albergue-2": true}
	if got := uniqueID("Albergue", taken); got != "albergue-3" {
		t.Errorf("uniqueID = %q", got)
	}
}

func TestFormFieldRows(t *testing.T) {
	// Rows 0 and 2 were filled, row 1 left empty.
	for field, want := range map[string]string{
		"contacts[1].value":     "contact2_value",
		"contacts[0].kind":      "contact0_kind",
		"contacts[1]":           "contact2_value",
		"areas[1].country":      "area2_country",
		"areas[1]":              "area2",
		"intake.first_contact":  "intake_first_contact",
		"categories":            "categories",
		"areas[7].country":      "areas",
		"something-new.surface": "",
	} {
		if got, _ := formField(field, []int{0, 2}, []int{0, 2}); got != want {
			t.Errorf("formField(%q) = %q, want %q", field, got, want)
		}
	}
}

func TestContactLinks(t *testing.T) {
	l := newLocale("es")
	vs := contactViews(l, []directory.Contact{
		{Kind: "phone", Value: "+52 (55) 1234-5678"},
		{Kind: "signal", Value: "+52 55 1234 5678", Preferred: true},
		{Kind: "signal", Value: "aurora.01"},
		{Kind: "email", Value: "asesoria@aurora.example"},
		{Kind: "email", Value: "javascript:alert(1)@x.example"},
		{Kind: "web", Value: "https://aurora.example"},
		{Kind: "onion", Value: "abc.onion"},
		{Kind: "matrix", Value: "@a:b.example"},
		{Kind: "whatsapp", Value: "+52 55 1234 5678"},
		{Kind: "phone", Value: "call me maybe"},
	})
	want := map[string]string{ // value+kind → href
		"signal +52 55 1234 5678":             "https://signal.me/#p/+525512345678",
		"phone +52 (55) 1234-5678":            "tel:+525512345678",
		"email asesoria@aurora.example":       "mailto:asesoria@aurora.example",
		"signal aurora.01":                    "",
		"email javascript:alert(1)@x.example": "",
		"web https://aurora.example":          "",
		"onion abc.onion":                     "",
		"matrix @a:b.example":                 "",
		"whatsapp +52 55 1234 5678":           "",
		"phone call me maybe":                 "",
	}
	if vs[0].Kind != "signal" || !vs[0].Preferred {
		t.Error("the preferred channel is not listed first")
	}
	for _, v := range vs {
		k := v.Kind + " " + v.Value
		if string(v.Href) != want[k] {
			t.Errorf("%s: href %q, want %q", k, v.Href, want[k])
		}
		if v.Kind == "web" || v.Kind == "onion" || v.Kind == "matrix" || v.Kind == "whatsapp" {
			if v.Caution == "" {
				t.Errorf("%s carries no caution", k)
			}
		}
	}
}

func TestLocalPath(t *testing.T) {
	for in, want := range map[string]string{
		"/org":                  "/org",
		"/org/edit?id=x":        "/org/edit?id=x",
		"//evil.example/":       "",
		"/\\evil.example":       "",
		"https://evil.example/": "",
		"org":                   "",
		"/x\r\nSet-Cookie: a=b": "",
	} {
		if got := localPath(in); got != want {
			t.Errorf("localPath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSessionsExpire(t *testing.T) {
	s := newSessionStore()
	now := time.Now()
	s.now = func() time.Time { return now }
	id, _ := s.create()
	if s.get(id) == nil {
		t.Fatal("fresh session not found")
	}
	now = now.Add(sessionIdle + time.Second)
	if s.get(id) != nil {
		t.Fatal("idle session still valid")
	}
	for range maxSessions + 5 {
		s.create()
	}
	if len(s.m) > maxSessions {
		t.Fatalf("%d sessions kept, at most %d", len(s.m), maxSessions)
	}
}

func TestTrustNotices(t *testing.T) {
	l := newLocale("es")
	now := time.Now()
	svc := &directory.Service{Name: "x", Status: "active", LastVerified: now.Format(time.DateOnly)}
	base := api.Entry{Org: "Aurora", Publisher: "aaaaa-bbbbb", Verified: true, Service: svc, Expires: now.Add(time.Hour)}
	fresh := api.Status{FreshAsOf: now}
	levels := func(ns []notice) string {
		var s []string
		for _, n := range ns {
			s = append(s, n.Level)
		}
		return strings.Join(s, ",")
	}
	has := func(ns []notice, text string) bool {
		for _, n := range ns {
			if strings.Contains(n.Text, text) {
				return true
			}
		}
		return false
	}
	if ns := trustNotices(l, base, fresh); levels(ns) != "ok" || !has(ns, "Verificado: lo firmó Aurora") {
		t.Errorf("verified entry: %+v", ns)
	}
	revoked := base
	revoked.Verified, revoked.Revoked = false, true
	if ns := trustNotices(l, revoked, fresh); levels(ns) != "danger" || !has(ns, "revocaron la clave de Aurora") {
		t.Errorf("revoked entry: %+v", ns)
	}
	unverified := base
	unverified.Verified = false
	if ns := trustNotices(l, unverified, fresh); levels(ns) != "danger" || !has(ns, "No se pudo verificar") {
		t.Errorf("unverified entry: %+v", ns)
	}
	expired := base
	expired.Expired, expired.Expires = true, time.Date(2026, 11, 1, 12, 0, 0, 0, time.Local)
	if ns := trustNotices(l, expired, fresh); !has(ns, "caducó el 1 de noviembre de 2026") {
		t.Errorf("expired entry: %+v", ns)
	}
	stale := base
	stale.Stale = true
	if ns := trustNotices(l, stale, api.Status{FreshAsOf: time.Date(2026, 11, 20, 9, 30, 0, 0, time.Local)}); !has(ns, "se actualizó por última vez el 20 de noviembre de 2026") {
		t.Errorf("stale entry: %+v", ns)
	}
	if ns := trustNotices(l, stale, api.Status{}); !has(ns, "nunca se ha sincronizado") {
		t.Errorf("never synced: %+v", ns)
	}
	// Synced a minute ago, but the stewards' heartbeat expired: the peers
	// answer and may be withholding news (an eclipse), which the notice
	// says instead of "updated a minute ago".
	eclipsed := api.Status{FreshAsOf: time.Now().Add(-time.Minute), HeartbeatStale: true, LastHeartbeat: time.Date(2026, 11, 20, 9, 30, 0, 0, time.Local)}
	if ns := trustNotices(l, stale, eclipsed); !has(ns, "señal de vida firmada") || !has(ns, "20 de noviembre de 2026") || !has(ns, "reteniendo novedades") {
		t.Errorf("heartbeat expired: %+v", ns)
	}
	// Heartbeats arrive, but report a key rotation that has not: the
	// peers pass on the heartbeats and hold back what they report.
	behind := api.Status{FreshAsOf: time.Now().Add(-time.Minute), BehindStewards: true, BehindEpoch: 3, LastHeartbeat: time.Now().Add(-time.Hour)}
	if ns := trustNotices(l, stale, behind); !has(ns, "rotación de claves") || !has(ns, "retienen lo que informan") {
		t.Errorf("behind the stewards: %+v", ns)
	}
	old := base
	old.Service = &directory.Service{Name: "x", Status: "temporarily-closed", LastVerified: "2024-01-05"}
	if ns := trustNotices(l, old, fresh); !has(ns, "cerrado temporalmente") || !has(ns, "5 de enero de 2024, hace mucho") {
		t.Errorf("closed, long unverified entry: %+v", ns)
	}
	deleted := base
	deleted.Deleted, deleted.Service = true, nil
	if ns := trustNotices(l, deleted, fresh); levels(ns) != "danger" || !has(ns, "Aurora retiró este servicio") {
		t.Errorf("deleted entry: %+v", ns)
	}
}

func TestFormRowsDoNotGrow(t *testing.T) {
	v := map[string][]string{"area_rows": {"3"}, "area0_city": {"Quito"}, "contact_rows": {"2"}, "contact0_value": {"+593 99"}, "contact1_kind": {"email"}}
	f := parseEntryForm(v)
	f.pad(false)
	if len(f.Areas) != 3 || len(f.Contacts) != 3 {
		t.Errorf("re-shown form has %d area and %d contact rows, want 3 and 3", len(f.Areas), len(f.Contacts))
	}
	f.pad(true)
	if len(f.Areas) != 5 || len(f.Contacts) != 5 {
		t.Errorf("after 'more rows': %d and %d rows, want 5 and 5", len(f.Areas), len(f.Contacts))
	}
}

// Every reachability verdict the node can give reads, in both languages,
// as a label, a why and a fix: never a raw key, an empty line or a
// formatting error, whatever the count.
func TestReachabilityReasonsTranslated(t *testing.T) {
	for r := range reachCounted {
		if !slices.Contains(node.ReachReasons, node.ReachReason(r)) {
			t.Errorf("reachCounted names %q, which is no reason of the node's", r)
		}
	}
	states := map[node.ReachReason]node.ReachState{
		node.ReasonConfirmed: node.ReachPublic, node.ReasonAutoNATPublic: node.ReachPublic,
		node.ReasonRelayed: node.ReachRelay, node.ReasonNoRelay: node.ReachUnreachable,
		node.ReasonRelayPending: node.ReachUnreachable,
	}
	for lang := range uiLangs {
		l := newLocale(lang)
		for _, r := range node.ReachReasons {
			for _, n := range []int{0, 1, 2, 1234} {
				st := states[r]
				if st == "" {
					st = node.ReachUnknown
				}
				p := &page{locale: l, Status: api.Status{Reachability: string(st), ReachabilityReason: string(r), ReachabilityN: n}}
				label, why, fix := p.ReachLabel(), p.ReachWhy(), p.ReachFix()
				for what, s := range map[string]string{"label": label, "why": why, "fix": fix} {
					if s == "" || strings.HasPrefix(s, "reach.") || strings.Contains(s, "%!") || strings.Contains(s, "%d") {
						t.Errorf("%s %s (n=%d): %s is %q", lang, r, n, what, s)
					}
				}
				if why == l.T("reach.noreason") {
					t.Errorf("%s %s: no why of its own", lang, r)
				}
				if reachCounted[string(r)] && !strings.Contains(why, l.Num(n)) {
					t.Errorf("%s %s (n=%d): the why does not give the count: %q", lang, r, n, why)
				}
			}
		}
	}
	// A reason this UI does not know (from a newer daemon) still reads as
	// words, with no fix.
	p := &page{locale: newLocale("es"), Status: api.Status{Reachability: "unreachable", ReachabilityReason: "someday"}}
	if why, fix := p.ReachWhy(), p.ReachFix(); why != "Este nodo no ha indicado el motivo." || fix != "" {
		t.Errorf("an unknown reason reads %q / %q", why, fix)
	}
}
