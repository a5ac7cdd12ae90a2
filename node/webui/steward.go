package webui

import (
	"context"
	"net/http"
	"strings"

	"github.com/ceiba-network/ceiba/node/api"
)

// recentShown bounds the settled proposals listed under the pending ones.
const recentShown = 20

type stewardData struct {
	Pending []proposalView
	Settled []proposalView
	Done    string
	Error   string
	// The revocation form, re-shown with its text when it failed.
	Fingerprint string
	Reason      string
	FieldError  string
}

type proposalView struct {
	api.Proposal
	Kind string // translated
	// Uncounted warns, translated, that a revocation lost its threshold
	// (api.Proposal.Uncounted); empty otherwise.
	Uncounted string
}

func (u *ui) stewardPage(w http.ResponseWriter, r *http.Request, ss *session) (*page, *stewardData, bool) {
	p := u.newPage(w, r, ss, "steward.title")
	p.Nav = "steward"
	if !p.IsSteward() {
		p.Data = messageData{Body: p.T("steward.not", p.T("role."+roleKey(p.Status.Role)))}
		u.render(w, http.StatusForbidden, "message", p)
		return nil, nil, false
	}
	d := &stewardData{}
	if k, ok := doneKeys[r.URL.Query().Get("done")]; ok {
		d.Done = p.T(k)
	}
	ps, err := u.b.Proposals()
	if err != nil {
		d.Error = p.T("steward.failed", err.Error())
	}
	for _, pr := range ps {
		v := proposalView{Proposal: pr, Kind: p.T("proposal." + proposalKind(pr.Kind))}
		if len(pr.Uncounted) > 0 {
			v.Uncounted = p.T("steward.uncounted", strings.Join(pr.Uncounted, ", "))
		}
		if pr.Effective {
			if len(d.Settled) < recentShown {
				d.Settled = append(d.Settled, v)
			}
		} else {
			d.Pending = append(d.Pending, v)
		}
	}
	p.Data = d
	return p, d, true
}

func proposalKind(k string) string {
	switch k {
	case "admit", "revoke", "charter", "epoch":
		return k
	}
	return "other"
}

func (u *ui) steward(w http.ResponseWriter, r *http.Request, ss *session) {
	p, _, ok := u.stewardPage(w, r, ss)
	if !ok {
		return
	}
	u.render(w, http.StatusOK, "steward", p)
}

func (u *ui) approve(w http.ResponseWriter, r *http.Request, ss *session) {
	p, d, ok := u.stewardPage(w, r, ss)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	if _, err := u.b.Approve(ctx, r.PostForm.Get("id")); err != nil {
		d.Error = p.T("steward.approve.failed", err.Error())
		u.render(w, http.StatusUnprocessableEntity, "steward", p)
		return
	}
	http.Redirect(w, r, "/steward?done=approved", http.StatusSeeOther)
}

func (u *ui) revoke(w http.ResponseWriter, r *http.Request, ss *session) {
	p, d, ok := u.stewardPage(w, r, ss)
	if !ok {
		return
	}
	d.Fingerprint, d.Reason = clean(r.PostForm.Get("fingerprint")), clean(r.PostForm.Get("reason"))
	switch {
	case d.Fingerprint == "":
		d.FieldError = p.T("revoke.need.fingerprint")
	case r.PostForm.Get("confirm") != "1":
		// A revocation is for good; with a threshold of one it takes
		// effect the moment it is published.
		d.FieldError = p.T("revoke.need.confirm")
	}
	if d.FieldError != "" {
		u.render(w, http.StatusUnprocessableEntity, "steward", p)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	if _, err := u.b.Propose(ctx, api.ProposeRequest{Kind: "revoke", Key: d.Fingerprint, Reason: d.Reason}); err != nil {
		d.FieldError = p.T("revoke.failed", err.Error())
		u.render(w, http.StatusUnprocessableEntity, "steward", p)
		return
	}
	http.Redirect(w, r, "/steward?done=proposed", http.StatusSeeOther)
}

func (u *ui) rotate(w http.ResponseWriter, r *http.Request, ss *session) {
	p, d, ok := u.stewardPage(w, r, ss)
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), writeTimeout)
	defer cancel()
	if _, err := u.b.Rotate(ctx); err != nil {
		d.Error = p.T("steward.rotate.failed", err.Error())
		u.render(w, http.StatusUnprocessableEntity, "steward", p)
		return
	}
	http.Redirect(w, r, "/steward?done=rotated", http.StatusSeeOther)
}
