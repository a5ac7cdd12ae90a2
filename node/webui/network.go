package webui

import "net/http"

// reachCounted are the reachability reasons whose message counts something
// (api.Status.ReachabilityN): their catalog entries take the count.
var reachCounted = map[string]bool{"relayed": true, "unreachable-relay-pending": true}

// ReachState is the node's reachability verdict: public, relay,
// unreachable, or unknown when there is none yet.
func (p *page) ReachState() string {
	switch s := p.Status.Reachability; s {
	case "public", "relay", "unreachable":
		return s
	}
	return "unknown"
}

// ReachLabel names the verdict in a few words, for the status bar.
func (p *page) ReachLabel() string { return p.T("reach.state." + p.ReachState()) }

// ReachWhy explains the verdict in the page's language. The daemon's own
// explanation is English, for the CLI; the UI translates its reason code.
func (p *page) ReachWhy() string {
	r := p.Status.ReachabilityReason
	if !p.keys["reach.why."+r] {
		return p.T("reach.noreason")
	}
	if reachCounted[r] {
		return p.T("reach.why."+r, p.Status.ReachabilityN)
	}
	return p.T("reach.why." + r)
}

// ReachFix says what to do about the verdict, or "" when the reason is one
// this UI does not know.
func (p *page) ReachFix() string {
	r := p.Status.ReachabilityReason
	if !p.keys["reach.fix."+r] {
		return ""
	}
	return p.T("reach.fix." + r)
}

// network shows how other nodes reach this one, why, and what to do about
// it. Like search, it needs no session: the status bar links to it on every
// page, and it says nothing a person at this device cannot see there.
func (u *ui) network(w http.ResponseWriter, r *http.Request) {
	p := u.newPage(w, r, nil, "network.title")
	p.Nav = "network"
	u.render(w, http.StatusOK, "network", p)
}
