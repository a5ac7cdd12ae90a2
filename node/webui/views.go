package webui

import (
	"html/template"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"golang.org/x/text/collate"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/api"
)

// Languages and countries the search filters offer. They are the ones
// people in this network's exile routes most often need; entries may name
// any other, and search by place also takes free text.
var (
	filterLanguages = []string{"es", "en", "pt", "fr", "ht", "quc", "cak", "mam", "kek", "tzo", "miq", "gn", "qu", "ay", "ar", "fa", "uk", "ru"}
	countries       = []string{"MX", "GT", "SV", "HN", "NI", "CR", "PA", "CU", "DO", "HT", "CO", "VE", "EC", "PE", "BO", "CL", "AR", "UY", "PY", "BR", "US", "CA", "ES", "FR", "DE"}
)

// verifiedLongAgo is when an organization's own "last verified" date is
// old enough to tell the reader to double-check.
const verifiedLongAgo = 180 * 24 * time.Hour

type option struct {
	Value, Label string
	Selected     bool
}

// options builds a select's choices, sorted by their translated labels the
// way a reader of that language expects (Á next to A).
func options(l *locale, values []string, label func(string) string, selected string) []option {
	out := make([]option, len(values))
	for i, v := range values {
		out[i] = option{Value: v, Label: label(v), Selected: v == selected}
	}
	c := collate.New(uiLangs[l.Lang])
	slices.SortStableFunc(out, func(a, b option) int { return c.CompareString(a.Label, b.Label) })
	return out
}

// contactView is one contact channel as the detail page shows it.
type contactView struct {
	Kind      string
	Label     string
	Value     string
	Href      template.URL // empty when the value is shown as text only
	Action    string       // the link's label
	Caution   string
	Preferred bool
	Languages string
	PGP       string
}

var (
	phoneChars = regexp.MustCompile(`^\+?[0-9 ().\-]{6,}$`)
	emailShape = regexp.MustCompile(`^[^\s@<>"'()\[\]\\,;:]+@[^\s@<>"'()\[\]\\,;:]+\.[a-zA-Z]{2,}$`)
)

// digits returns a phone number as + and digits, or "" if the value is not
// plainly a phone number (a Signal username, say).
func digits(v string) string {
	if !phoneChars.MatchString(v) {
		return ""
	}
	var b strings.Builder
	for i, r := range v {
		if r >= '0' && r <= '9' || r == '+' && i == 0 {
			b.WriteRune(r)
		}
	}
	if n := strings.TrimPrefix(b.String(), "+"); len(n) < 6 || len(n) > 15 {
		return ""
	}
	return b.String()
}

// contactViews decides, per channel, what may be a link. Links that only
// open an app on this device (tel:, mailto:) or that keep the number in
// the URL fragment (signal.me, whose server never sees it) are safe to
// offer; web, onion and Matrix addresses are shown as text, because
// opening them from here tells the network (and the site) who looked.
func contactViews(l *locale, cs []directory.Contact) []contactView {
	var out []contactView
	for _, c := range cs {
		v := contactView{Kind: c.Kind, Label: l.KindName(c.Kind), Value: c.Value, Preferred: c.Preferred, Languages: l.Langs(c.Languages), PGP: c.PGP}
		switch c.Kind {
		case "phone":
			if d := digits(c.Value); d != "" {
				v.Href, v.Action = template.URL("tel:"+d), l.T("open.phone")
			}
		case "email":
			if emailShape.MatchString(c.Value) {
				v.Href, v.Action = template.URL("mailto:"+url.PathEscape(c.Value)), l.T("open.email")
			}
		case "signal":
			if d := digits(c.Value); d != "" && strings.HasPrefix(d, "+") {
				v.Href, v.Action = template.URL("https://signal.me/#p/"+d), l.T("open.signal")
				v.Caution = l.T("caution.signal")
			} else {
				v.Caution = l.T("caution.signal.username")
			}
		case "whatsapp":
			v.Caution = l.T("caution.whatsapp")
		case "web":
			v.Caution = l.T("caution.web")
		case "onion":
			v.Caution = l.T("caution.onion")
		case "matrix":
			v.Caution = l.T("caution.matrix")
		}
		out = append(out, v)
	}
	// The organization's preferred channels first; otherwise its order.
	slices.SortStableFunc(out, func(a, b contactView) int {
		switch {
		case a.Preferred == b.Preferred:
			return 0
		case a.Preferred:
			return -1
		}
		return 1
	})
	return out
}

// areaText names a place: "Ciudad de México, México".
func areaText(l *locale, a directory.Area) string {
	var parts []string
	for _, s := range []string{a.City, countryName(l, a.Country), a.Text} {
		if s != "" {
			parts = append(parts, s)
		}
	}
	return strings.Join(parts, ", ")
}

func countryName(l *locale, code string) string {
	if code == "" {
		return ""
	}
	return l.Country(code)
}

func areaTexts(l *locale, as []directory.Area) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = areaText(l, a)
	}
	return out
}

// trustNotices explains, in plain words, how far an entry can be trusted,
// worst news first. Every entry gets at least one notice: silence would
// read as "all is well".
func trustNotices(l *locale, e api.Entry, st api.Status) []notice {
	var out []notice
	org := e.Org
	if org == "" {
		org = l.T("trust.unknown-org")
	}
	switch {
	case e.Deleted:
		out = append(out, notice{"danger", l.T("trust.deleted", org)})
	case e.Revoked:
		out = append(out, notice{"danger", l.T("trust.revoked", org, e.Publisher)})
	case !e.Verified:
		out = append(out, notice{"danger", l.T("trust.unverified", e.Publisher)})
	}
	if e.Expired && !e.Deleted {
		out = append(out, notice{"warn", l.T("trust.expired", l.Date(e.Expires))})
	}
	if e.Stale {
		switch {
		case st.BehindStewards:
			out = append(out, notice{"warn", l.T("trust.stale.behind")})
		case st.HeartbeatStale && !st.FreshAsOf.IsZero() && !st.LastHeartbeat.IsZero():
			out = append(out, notice{"warn", l.T("trust.stale.heartbeat", l.DateTime(st.LastHeartbeat))})
		case st.HeartbeatStale && !st.FreshAsOf.IsZero():
			out = append(out, notice{"warn", l.T("status.heartbeat.never")})
		case st.FreshAsOf.IsZero():
			out = append(out, notice{"warn", l.T("trust.stale.never")})
		default:
			out = append(out, notice{"warn", l.T("trust.stale", l.DateTime(st.FreshAsOf))})
		}
	}
	if s := e.Service; s != nil && !e.Deleted {
		switch s.Status {
		case "inactive":
			out = append(out, notice{"warn", l.T("trust.inactive")})
		case "temporarily-closed":
			out = append(out, notice{"warn", l.T("trust.closed")})
		}
		if s.LastVerified == "" {
			out = append(out, notice{"info", l.T("trust.lastverified.none")})
		} else if t, err := time.Parse(time.DateOnly, s.LastVerified); err == nil && time.Since(t) > verifiedLongAgo {
			out = append(out, notice{"warn", l.T("trust.lastverified.old", l.Day(t))})
		}
	}
	if e.Verified && !e.Revoked && !e.Deleted {
		out = append(out, notice{"ok", l.T("trust.verified", org, e.Publisher)})
	}
	return out
}

// badges are what a search result says at a glance: its status, whether
// its signature checks out, and any warning.
func badges(l *locale, e api.Entry) []notice {
	var out []notice
	if s := e.Service; s != nil {
		level := "ok"
		if s.Status != "active" {
			level = "warn"
		}
		out = append(out, notice{level, l.StatusName(s.Status)})
	}
	switch {
	case e.Revoked:
		out = append(out, notice{"danger", l.T("badge.revoked")})
	case !e.Verified:
		out = append(out, notice{"danger", l.T("badge.unverified")})
	default:
		out = append(out, notice{"ok", l.T("badge.verified")})
	}
	if e.Expired {
		out = append(out, notice{"warn", l.T("badge.expired")})
	}
	return out
}
