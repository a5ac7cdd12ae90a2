package webui

import (
	"context"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/skip2/go-qrcode"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/node/api"
)

type orgData struct {
	Entries []api.Entry
	Done    string
	Error   string
}

// orgPage starts an organization page, or answers for the caller when this
// node's key cannot publish.
func (u *ui) orgPage(w http.ResponseWriter, r *http.Request, ss *session, title string) (*page, bool) {
	p := u.newPage(w, r, ss, title)
	p.Nav = "org"
	if !p.CanManage() {
		p.Data = messageData{Body: p.T("org.notmember", p.T("role."+roleKey(p.Status.Role)))}
		u.render(w, http.StatusForbidden, "message", p)
		return nil, false
	}
	return p, true
}

func roleKey(role string) string {
	for _, r := range []string{"steward", "member", "reader", "pending", "revoked"} {
		if hasRole(role, r) {
			return r
		}
	}
	return "none"
}

func (u *ui) org(w http.ResponseWriter, r *http.Request, ss *session) {
	p, ok := u.orgPage(w, r, ss, "org.title")
	if !ok {
		return
	}
	d := orgData{}
	if k, ok := doneKeys[r.URL.Query().Get("done")]; ok {
		d.Done = p.T(k)
	}
	es, err := u.b.Mine()
	if err != nil {
		d.Error = p.T("org.failed", err.Error())
	}
	// Live entries first, each group by name.
	slices.SortStableFunc(es, func(a, b api.Entry) int {
		if a.Deleted != b.Deleted {
			if a.Deleted {
				return 1
			}
			return -1
		}
		return strings.Compare(entryName(a), entryName(b))
	})
	d.Entries = es
	p.Data = d
	u.render(w, http.StatusOK, "org", p)
}

func entryName(e api.Entry) string {
	if e.Service != nil {
		return e.Service.Name
	}
	return e.ID
}

type editData struct {
	F          *entryForm
	Categories []option
	Statuses   []option
	Kinds      []string
}

func (u *ui) showEdit(w http.ResponseWriter, status int, p *page, f *entryForm) {
	if f.Editing {
		p.Title = p.T("edit.title.edit", f.Name)
	} else {
		p.Title = p.T("edit.title.new")
	}
	d := editData{F: f, Kinds: directory.ContactKinds}
	for _, c := range directory.Categories {
		d.Categories = append(d.Categories, option{Value: c, Label: p.Cat(c), Selected: f.Categories[c]})
	}
	for _, s := range directory.Statuses {
		d.Statuses = append(d.Statuses, option{Value: s, Label: p.StatusName(s), Selected: s == f.Status})
	}
	p.Data = d
	u.render(w, status, "edit", p)
}

// findMine returns this organization's entry id, deleted or not.
func (u *ui) findMine(id string) (api.Entry, bool, error) {
	es, err := u.b.Mine()
	if err != nil {
		return api.Entry{}, false, err
	}
	for _, e := range es {
		if e.ID == id {
			return e, true, nil
		}
	}
	return api.Entry{}, false, nil
}

func (u *ui) editForm(w http.ResponseWriter, r *http.Request, ss *session) {
	p, ok := u.orgPage(w, r, ss, "edit.title.new")
	if !ok {
		return
	}
	id := r.URL.Query().Get("id")
	if id == "" {
		u.showEdit(w, http.StatusOK, p, newEntryForm())
		return
	}
	e, found, err := u.findMine(id)
	if err != nil || !found || e.Service == nil {
		u.message(w, r, err, http.StatusNotFound, "entry.missing.title", "org.noentry")
		return
	}
	u.showEdit(w, http.StatusOK, p, formFromService(e.ID, e.Service))
}

func (u *ui) edit(w http.ResponseWriter, r *http.Request, ss *session) {
	p, ok := u.orgPage(w, r, ss, "edit.title.new")
	if !ok {
		return
	}
	f := parseEntryForm(r.PostForm)
	if r.PostForm.Get("action") == "rows" {
		f.pad(true)
		u.showEdit(w, http.StatusOK, p, f)
		return
	}
	mine, err := u.b.Mine()
	if err != nil {
		f.Error = p.T("form.error.other", err.Error())
		f.pad(false)
		u.showEdit(w, http.StatusInternalServerError, p, f)
		return
	}
	taken := map[string]bool{}
	for _, e := range mine {
		taken[e.ID] = true
	}
	if f.Editing && !taken[f.ID] {
		f.Error = p.T("org.noentry")
		f.pad(false)
		u.showEdit(w, http.StatusUnprocessableEntity, p, f)
		return
	}
	svc := f.service()
	days, ok := f.expiresDays()
	if !ok {
		f.Errors["expires_days"] = p.T("hint.expires_days")
		f.Error = p.T("form.error.fields")
	}
	if err := directory.CheckService(svc); err != nil {
		f.place(p.locale, err)
	}
	if f.Error != "" {
		f.pad(false)
		u.showEdit(w, http.StatusUnprocessableEntity, p, f)
		return
	}
	id := f.ID
	if !f.Editing {
		id = uniqueID(f.Name, taken)
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	e, err := u.b.Publish(ctx, api.PublishRequest{ID: id, Service: svc, ExpiresInDays: days})
	if err != nil {
		f.Error = p.T("form.error.publish", err.Error())
		f.pad(false)
		u.showEdit(w, http.StatusUnprocessableEntity, p, f)
		return
	}
	http.Redirect(w, r, "/entry?ref="+url.QueryEscape(e.Key)+"&done=published", http.StatusSeeOther)
}

type deleteData struct {
	E     api.Entry
	Name  string
	Error string
}

func (u *ui) deleteForm(w http.ResponseWriter, r *http.Request, ss *session) {
	p, ok := u.orgPage(w, r, ss, "delete.title")
	if !ok {
		return
	}
	e, found, err := u.findMine(r.URL.Query().Get("id"))
	if err != nil || !found || e.Deleted {
		u.message(w, r, err, http.StatusNotFound, "entry.missing.title", "org.noentry")
		return
	}
	p.Data = deleteData{E: e, Name: entryName(e)}
	u.render(w, http.StatusOK, "delete", p)
}

func (u *ui) delete(w http.ResponseWriter, r *http.Request, ss *session) {
	p, ok := u.orgPage(w, r, ss, "delete.title")
	if !ok {
		return
	}
	id := r.PostForm.Get("id")
	e, found, err := u.findMine(id)
	if err != nil || !found || e.Deleted {
		u.message(w, r, err, http.StatusNotFound, "entry.missing.title", "org.noentry")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	if _, err := u.b.Remove(ctx, id); err != nil {
		p.Data = deleteData{E: e, Name: entryName(e), Error: p.T("delete.failed", err.Error())}
		u.render(w, http.StatusUnprocessableEntity, "delete", p)
		return
	}
	http.Redirect(w, r, "/org?done=deleted", http.StatusSeeOther)
}

// Invite lifetimes offered; the daemon accepts 1 minute to 30 days.
var inviteDays = []int{1, 3, 7, 30}

type inviteData struct {
	Role    string // what this node may invite: reader or member
	Days    []option
	Invite  *api.Invite
	QR      string // the QR code image's address, if the code fits one
	Error   string
	Expires string
}

func (u *ui) invitePage(w http.ResponseWriter, r *http.Request, ss *session) (*page, *inviteData, bool) {
	p := u.newPage(w, r, ss, "invite.title")
	p.Nav = "invite"
	d := &inviteData{}
	switch {
	case hasRole(p.Status.Role, "member"):
		d.Role = "reader"
	case hasRole(p.Status.Role, "steward"):
		d.Role = "member"
	default:
		p.Data = messageData{Body: p.T("invite.cannot", p.T("role."+roleKey(p.Status.Role)))}
		u.render(w, http.StatusForbidden, "message", p)
		return nil, nil, false
	}
	for _, n := range inviteDays {
		d.Days = append(d.Days, option{Value: strconv.Itoa(n), Label: p.T("duration.days", n), Selected: n == 3})
	}
	p.Data = d
	return p, d, true
}

func (u *ui) inviteForm(w http.ResponseWriter, r *http.Request, ss *session) {
	p, _, ok := u.invitePage(w, r, ss)
	if !ok {
		return
	}
	u.render(w, http.StatusOK, "invite", p)
}

func (u *ui) invite(w http.ResponseWriter, r *http.Request, ss *session) {
	p, d, ok := u.invitePage(w, r, ss)
	if !ok {
		return
	}
	days := 3
	for _, n := range inviteDays {
		if r.PostForm.Get("days") == strconv.Itoa(n) {
			days = n
		}
	}
	for i := range d.Days {
		d.Days[i].Selected = d.Days[i].Value == strconv.Itoa(days)
	}
	inv, err := u.b.CreateInvite(api.InviteRequest{Role: d.Role, Expires: time.Duration(days) * 24 * time.Hour})
	if err != nil {
		d.Error = p.T("invite.failed", err.Error())
		u.render(w, http.StatusUnprocessableEntity, "invite", p)
		return
	}
	d.Invite = &inv
	d.Expires = p.DateTime(inv.Expires)
	if _, err := qrcode.New(inv.Code, qrcode.Medium); err == nil {
		d.QR = "/org/invite/qr?i=" + u.sessions.addInvite(ss, inv)
	}
	u.render(w, http.StatusOK, "invite", p)
}

// inviteQR serves a QR code of an invite this session just created. The
// code is looked up in the session, so the secret never sits in a URL, in
// the browser's history or in a log.
func (u *ui) inviteQR(w http.ResponseWriter, r *http.Request, ss *session) {
	inv, ok := u.sessions.invite(ss, r.URL.Query().Get("i"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	q, err := qrcode.New(inv.Code, qrcode.Medium)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// Four pixels a module stays sharp on a phone camera at any version.
	png, err := q.PNG(-4)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Write(png)
}
