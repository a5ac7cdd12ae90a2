package webui

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/api"
)

// pageSize is how many results a search shows before "more".
const pageSize = 20

type searchData struct {
	Q, Category, Language, Area string
	Categories                  []option
	Languages                   []option
	Searched                    bool // any box or filter was used
	Results                     []resultView
	More                        string // link to more results, if any
	Error                       string
}

type resultView struct {
	E        api.Entry
	Href     string
	Areas    []string
	Verified string // the last verified date, in words
	Badges   []notice
}

func (u *ui) search(w http.ResponseWriter, r *http.Request) {
	p := u.newPage(w, r, nil, "search.title")
	p.Nav = "search"
	q := r.URL.Query()
	d := searchData{
		Q:        strings.TrimSpace(q.Get("q")),
		Category: q.Get("category"),
		Language: q.Get("language"),
		Area:     strings.TrimSpace(q.Get("area")),
	}
	d.Searched = d.Q != "" || d.Category != "" || d.Language != "" || d.Area != ""
	d.Categories = options(p.locale, directory.Categories, p.Cat, d.Category)
	d.Languages = options(p.locale, filterLanguages, p.LangName, d.Language)
	limit, _ := strconv.Atoi(q.Get("limit"))
	limit = min(max(limit, pageSize), directory.MaxLimit)
	p.Data = &d
	if !p.Status.Joined {
		d.Error = p.T("status.notjoined")
		u.render(w, http.StatusOK, "search", p)
		return
	}
	// One more than shown tells whether a "more" link is needed.
	res, err := u.b.Search(directory.Query{Text: d.Q, Category: d.Category, Language: d.Language, Area: d.Area, Limit: limit + 1})
	if err != nil {
		d.Error = p.T("search.failed", err.Error())
		u.render(w, http.StatusOK, "search", p)
		return
	}
	if len(res) > limit {
		res = res[:limit]
		more := url.Values{"q": {d.Q}, "category": {d.Category}, "language": {d.Language}, "area": {d.Area}, "limit": {strconv.Itoa(limit + pageSize)}}
		d.More = "/?" + more.Encode()
	}
	for _, e := range res {
		v := resultView{E: e, Href: "/entry?ref=" + url.QueryEscape(e.Key), Badges: badges(p.locale, e)}
		if e.Service != nil {
			v.Areas = areaTexts(p.locale, e.Service.Areas)
			v.Verified = p.DayString(e.Service.LastVerified)
		}
		d.Results = append(d.Results, v)
	}
	u.render(w, http.StatusOK, "search", p)
}

type entryData struct {
	E        api.Entry
	S        *directory.Service
	Contacts []contactView
	Areas    []string
	Notices  []notice
	Alert    string
	Done     string
	Mine     bool // this node published it: offer to edit
}

// doneKeys are the confirmations a redirect may ask a page to show; only
// these, so a link cannot make a page say anything else.
var doneKeys = map[string]string{
	"published": "done.published",
	"deleted":   "done.deleted",
	"approved":  "done.approved",
	"proposed":  "done.proposed",
	"rotated":   "done.rotated",
}

func (u *ui) entry(w http.ResponseWriter, r *http.Request) {
	ref := r.URL.Query().Get("ref")
	if ref == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	e, err := u.b.Show(ref)
	if err != nil {
		u.message(w, r, err, http.StatusNotFound, "entry.missing.title", "entry.missing.body")
		return
	}
	p := u.newPage(w, r, nil, "entry.title")
	p.Nav = "search"
	if e.Service != nil {
		p.Title = e.Service.Name
	}
	d := entryData{E: e, S: e.Service, Notices: trustNotices(p.locale, e, p.Status)}
	if k, ok := doneKeys[r.URL.Query().Get("done")]; ok {
		d.Done = p.T(k)
	}
	if e.Service != nil && !e.Deleted {
		d.Contacts = contactViews(p.locale, e.Service.Contacts)
		d.Areas = areaTexts(p.locale, e.Service.Areas)
		d.Alert = e.Service.Alert
	}
	d.Mine = p.SignedIn && e.Publisher == p.Status.Fingerprint
	p.Data = d
	u.render(w, http.StatusOK, "entry", p)
}
