package webui

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/text/feature/plural"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/message/catalog"
)

//go:embed locales/*.json
var localeFS embed.FS

// The UI speaks these two; English is the fallback for everything else.
var uiLangs = map[string]language.Tag{"en": language.English, "es": language.Spanish}

// catalogs holds every translated string. A locale file maps a key to a
// format string, or to an object of CLDR plural forms ("one", "other", …)
// for messages that count something.
type catalogs struct {
	builder *catalog.Builder
	keys    map[string]map[string]bool // language code → keys it defines
}

var (
	loadOnce sync.Once
	cats     *catalogs
	catsErr  error
)

func loadCatalogs() (*catalogs, error) {
	loadOnce.Do(func() { cats, catsErr = parseCatalogs() })
	return cats, catsErr
}

func parseCatalogs() (*catalogs, error) {
	c := &catalogs{builder: catalog.NewBuilder(catalog.Fallback(language.English)), keys: map[string]map[string]bool{}}
	for code, tag := range uiLangs {
		data, err := localeFS.ReadFile(path.Join("locales", code+".json"))
		if err != nil {
			return nil, err
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(data, &raw); err != nil {
			return nil, fmt.Errorf("locales/%s.json: %w", code, err)
		}
		c.keys[code] = map[string]bool{}
		for key, v := range raw {
			var s string
			if json.Unmarshal(v, &s) == nil {
				if err := c.builder.SetString(tag, key, s); err != nil {
					return nil, fmt.Errorf("locales/%s.json %s: %w", code, key, err)
				}
				c.keys[code][key] = true
				continue
			}
			var forms map[string]string
			if err := json.Unmarshal(v, &forms); err != nil || forms["other"] == "" {
				return nil, fmt.Errorf("locales/%s.json %s: want a string or plural forms with \"other\"", code, key)
			}
			// Plural forms select on the first argument, which must be
			// the count; "other" goes last as the catch-all.
			var cases []any
			sel := make([]string, 0, len(forms))
			for f := range forms {
				if f != "other" {
					sel = append(sel, f)
				}
			}
			sort.Strings(sel)
			for _, f := range append(sel, "other") {
				cases = append(cases, f, forms[f])
			}
			if err := c.builder.Set(tag, key, plural.Selectf(1, "%d", cases...)); err != nil {
				return nil, fmt.Errorf("locales/%s.json %s: %w", code, key, err)
			}
			c.keys[code][key] = true
		}
	}
	return c, nil
}

// missingKeys collects keys asked for but absent from a catalog, so tests
// can fail on a page that would show a raw key.
var missingKeys sync.Map

// locale formats text, numbers and dates in one UI language.
type locale struct {
	Lang string // "es" or "en"
	p    *message.Printer
	keys map[string]bool
}

func newLocale(code string) *locale {
	c, err := loadCatalogs()
	if err != nil {
		// The catalogs are embedded: a broken one is a build defect that
		// tests catch, never a runtime condition.
		panic(err)
	}
	if _, ok := uiLangs[code]; !ok {
		code = "en"
	}
	return &locale{Lang: code, p: message.NewPrinter(uiLangs[code], message.Catalog(c.builder)), keys: c.keys[code]}
}

// T translates key, formatting args into it.
func (l *locale) T(key string, args ...any) string {
	if !l.keys[key] {
		missingKeys.Store(l.Lang+":"+key, true)
		return key
	}
	return l.p.Sprintf(key, args...)
}

// Num formats an integer the way the language groups digits.
func (l *locale) Num(n int) string { return l.p.Sprintf("%d", n) }

// Other is the language the switch link offers.
func (l *locale) Other() string {
	if l.Lang == "es" {
		return "en"
	}
	return "es"
}

var monthKeys = [...]string{"month.1", "month.2", "month.3", "month.4", "month.5", "month.6",
	"month.7", "month.8", "month.9", "month.10", "month.11", "month.12"}

// Day writes a calendar date as it stands, without moving it to another
// time zone: a "last verified" day is a day, not an instant.
func (l *locale) Day(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	// Day and year go in as strings: a printer would group 2026 as 2,026.
	return l.T("date.long", strconv.Itoa(t.Day()), l.T(monthKeys[t.Month()-1]), strconv.Itoa(t.Year()))
}

// Date writes the local calendar date of an instant.
func (l *locale) Date(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return l.Day(t.Local())
}

// DateTime writes an instant's local date and time of day.
func (l *locale) DateTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	t = t.Local()
	return l.T("datetime.long", l.Day(t), t.Format(l.T("time.layout")))
}

// DayString writes a YYYY-MM-DD date, or "" if it is not one.
func (l *locale) DayString(s string) string {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return ""
	}
	return l.Day(t)
}

// Ago says how long ago t was, in words.
func (l *locale) Ago(t time.Time) string {
	d := time.Since(t)
	switch {
	case t.IsZero():
		return l.T("ago.never")
	case d < time.Minute:
		return l.T("ago.now")
	case d < time.Hour:
		return l.T("ago.minutes", int(d/time.Minute))
	case d < 48*time.Hour:
		return l.T("ago.hours", int(d/time.Hour))
	}
	return l.T("ago.days", int(d/(24*time.Hour)))
}

// Cat names a category; an unknown one (from a newer version) shows as is.
func (l *locale) Cat(c string) string { return l.named("cat.", c) }

// StatusName names a service status.
func (l *locale) StatusName(s string) string { return l.named("svcstatus.", s) }

// KindName names a contact channel.
func (l *locale) KindName(k string) string { return l.named("kind.", k) }

// LangName names an ISO 639 language in the UI language.
func (l *locale) LangName(code string) string { return l.named("langname.", code) }

// Country names an ISO 3166 country in the UI language.
func (l *locale) Country(code string) string { return l.named("country.", code) }

// named translates prefix+v when the catalog knows it. Values come from
// the network, so a code the catalog lacks is shown raw, not reported.
func (l *locale) named(prefix, v string) string {
	if l.keys[prefix+v] {
		return l.p.Sprintf(prefix + v)
	}
	return v
}

// Langs names a list of language codes.
func (l *locale) Langs(codes []string) string {
	names := make([]string, len(codes))
	for i, c := range codes {
		names[i] = l.LangName(c)
	}
	return strings.Join(names, ", ")
}

// langCookie remembers the language someone chose with the switch.
const langCookie = "lang"

// pickLang chooses the UI language: an explicit ?lang= (which is also
// remembered), then the remembered choice, then the browser's preference.
// Spanish wins only when the browser asks for it before English, because
// English is the fallback for people who read neither well.
func pickLang(w http.ResponseWriter, r *http.Request) string {
	if v := r.URL.Query().Get("lang"); isUILang(v) {
		http.SetCookie(w, &http.Cookie{Name: langCookie, Value: v, Path: "/", MaxAge: 365 * 24 * 3600, HttpOnly: true, SameSite: http.SameSiteLaxMode})
		return v
	}
	if c, err := r.Cookie(langCookie); err == nil && isUILang(c.Value) {
		return c.Value
	}
	return negotiate(r.Header.Get("Accept-Language"))
}

func isUILang(code string) bool {
	_, ok := uiLangs[code]
	return ok
}

func negotiate(accept string) string {
	tags, _, err := language.ParseAcceptLanguage(accept)
	if err != nil {
		return "en"
	}
	for _, t := range tags { // already sorted by weight
		switch b, _ := t.Base(); b.String() {
		case "es":
			return "es"
		case "en":
			return "en"
		}
	}
	return "en"
}
