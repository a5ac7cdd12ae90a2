package webui

import "net/http"

// The panic button: one confirmation, then the daemon destroys the keys
// and the directory copy and stops. Anyone signed in with the token may
// press it (a reader's device is worth wiping too).

type wipeData struct{ Error string }

func (u *ui) wipeForm(w http.ResponseWriter, r *http.Request, ss *session) {
	p := u.newPage(w, r, ss, "wipe.title")
	p.Nav = "wipe"
	p.Data = wipeData{}
	u.render(w, http.StatusOK, "wipe", p)
}

func (u *ui) wipe(w http.ResponseWriter, r *http.Request, ss *session) {
	if err := u.b.WipeAndStop(); err != nil {
		p := u.newPage(w, r, ss, "wipe.title")
		p.Nav = "wipe"
		p.Data = wipeData{Error: p.T("wipe.failed", err.Error())}
		u.render(w, http.StatusInternalServerError, "wipe", p)
		return
	}
	// The session is of no use any more; the page says it is done.
	if c, err := r.Cookie(cookieName(r, "ceiba_session")); err == nil {
		u.sessions.end(c.Value)
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName(r, "ceiba_session"), Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	u.message(w, r, nil, http.StatusOK, "wiped.title", "wiped.body")
}
