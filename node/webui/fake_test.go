package webui_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/directory/dirtest"
	"github.com/ceiba-network/ceiba/node/api"
)

// fakeNode is a Backend over a real directory.State: records are really
// signed and applied, so search, revocation and validation behave as in a
// daemon, without a network. It stands in for the daemon only in unit
// tests of the UI; e2e_test.go runs the UI on real daemons.
type fakeNode struct {
	mu    sync.Mutex
	t     testing.TB
	nw    *dirtest.Network
	st    *directory.State
	me    *directory.Identity
	org   *directory.Identity // the member organization of the sample data
	peers int
	fresh time.Time
	// The reachability verdict Status reports: state, reason code, count.
	reach, reachReason string
	reachN             int
	// rotation is the rotation status the fake reports (nil: none).
	rotation *directory.Rotation
}

// newFake builds a network with one steward (threshold 1) and one member
// organization with sample entries. asSteward picks whose node this is.
func newFake(t testing.TB, asSteward bool) *fakeNode {
	nw := dirtest.New(t, 1, 1)
	nw.Now = time.Now().Add(-time.Minute)
	f := &fakeNode{t: t, nw: nw, st: nw.State(), org: dirtest.MustIdentity(t), peers: 2, fresh: time.Now().Add(-2 * time.Minute),
		reach: "public", reachReason: "confirmed"}
	f.me = f.org
	if asSteward {
		f.me = nw.Stewards[0]
	}
	f.apply(nw.Genesis)
	f.apply(nw.Admit(t, f.org, "Colectivo Jurídico Aurora"))
	for _, e := range sampleEntries(nw.Now) {
		f.apply(nw.Sign(t, e, f.org))
	}
	return f
}

func (f *fakeNode) apply(r *directory.Record) {
	f.t.Helper()
	if _, err := f.st.Apply(r); err != nil {
		f.t.Fatalf("apply %s: %v", r.Type, err)
	}
}

func sampleEntries(now time.Time) []*directory.Entry {
	mk := func(id string, s *directory.Service) *directory.Entry {
		return &directory.Entry{ID: id, Seq: 1, Issued: now.Unix(), Expires: now.Add(90 * 24 * time.Hour).Unix(), Service: s}
	}
	return []*directory.Entry{
		mk("asesoria", &directory.Service{
			Name:               "Asesoría jurídica para personas defensoras",
			Description:        "Acompañamiento legal en trámites de asilo, refugio y protección complementaria.\nPrimera consulta gratuita y confidencial.",
			Status:             "active",
			Categories:         []string{"legal", "migration"},
			Languages:          []string{"es", "en"},
			Areas:              []directory.Area{{City: "Ciudad de México", Country: "MX"}},
			Schedules:          []string{"lun a vie 9:00–18:00"},
			Eligibility:        "Personas defensoras de derechos humanos en el exilio y sus familias.",
			ApplicationProcess: "Escribe por Signal con tu nombre de confianza; te llamamos en 48 horas.",
			Fees:               "Gratuito",
			Contacts: []directory.Contact{
				{Kind: "signal", Value: "+52 55 1234 5678", Preferred: true, Languages: []string{"es"}},
				{Kind: "email", Value: "asesoria@aurora.example"},
				{Kind: "phone", Value: "+52 55 8765 4321"},
				{Kind: "onion", Value: "aurora7xkq3v2fbyq4r5m6n7o8p9q0rstuvwxyzabcdefghijklmn.onion"},
			},
			Intake:       &directory.Intake{FirstContact: "Mensaje por Signal", ResponseTime: "48 horas", VettingRequired: true},
			LastVerified: now.Format(time.DateOnly),
		}),
		mk("albergue", &directory.Service{
			Name:         "Albergue temporal Casa Ceiba",
			Description:  "Alojamiento de emergencia hasta 30 días para personas defensoras y sus familias.",
			Status:       "active",
			Categories:   []string{"shelter"},
			Languages:    []string{"es"},
			Areas:        []directory.Area{{City: "Bogotá", Country: "CO"}},
			Contacts:     []directory.Contact{{Kind: "signal", Value: "+57 300 000 0000", Preferred: true}, {Kind: "web", Value: "https://casaceiba.example"}},
			Intake:       &directory.Intake{Always: true},
			LastVerified: "2025-01-15",
		}),
		mk("escucha", &directory.Service{
			Name:       "Apoyo psicológico en línea",
			Status:     "temporarily-closed",
			Categories: []string{"psychosocial", "health"},
			Languages:  []string{"es", "quc"},
			Areas:      []directory.Area{{Text: "en línea"}},
			Contacts:   []directory.Contact{{Kind: "matrix", Value: "@escucha:matrix.example"}},
		}),
		mk("seguridad", &directory.Service{
			Name:        "Digital security helpline",
			Description: "Help with compromised phones and accounts.",
			Status:      "active",
			Categories:  []string{"digital-security"},
			Languages:   []string{"en", "es"},
			Areas:       []directory.Area{{City: "Madrid", Country: "ES"}},
			Contacts:    []directory.Contact{{Kind: "email", Value: "help@helpline.example", PGP: "ABCD 1234 EF56 7890"}},
		}),
	}
}

func (f *fakeNode) role() string {
	pub := f.me.Public()
	switch {
	case f.st.IsRevoked(pub):
		return "revoked"
	case slices.Contains(f.st.Charter().StewardKeys(), pub):
		return "steward"
	}
	if _, ok := f.st.Member(pub); ok {
		return "member"
	}
	return "none"
}

func (f *fakeNode) Status() api.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return api.Status{
		Fingerprint: f.me.Fingerprint(), Role: f.role(), Joined: true, Network: f.nw.ID.String(),
		NetworkName: f.st.Charter().Name, Peers: f.peers, Epoch: f.st.CurrentEpoch(), FreshAsOf: f.fresh,
		LastSync: f.fresh, LastSyncPeers: f.peers, Stale: time.Since(f.fresh) > time.Hour, Counts: f.st.Stats(),
		Reachability: f.reach, ReachabilityReason: f.reachReason, ReachabilityN: f.reachN,
		Rotation: f.rotation,
	}
}

// setRotation changes the rotation status the fake reports.
func (f *fakeNode) setRotation(r directory.Rotation) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rotation = &r
}

// setReach changes the reachability verdict the fake reports.
func (f *fakeNode) setReach(state, reason string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reach, f.reachReason, f.reachN = state, reason, n
}

func (f *fakeNode) view(l directory.Listing) api.Entry {
	e := api.Entry{Key: l.Key, ID: l.Entry.ID, Seq: l.Entry.Seq, Org: l.Org,
		Publisher: directory.Fingerprint(l.Publisher), PublisherKey: l.Publisher.Hex(),
		Issued: time.Unix(l.Entry.Issued, 0), Expires: time.Unix(l.Entry.Expires, 0),
		Deleted: l.Entry.Deleted, Service: l.Entry.Service, Hash: l.Hash.String()}
	_, member := f.st.Member(l.Publisher)
	e.Revoked = f.st.IsRevoked(l.Publisher)
	e.Verified = member && !e.Revoked
	e.Expired = !time.Now().Before(e.Expires)
	e.Stale = time.Since(f.fresh) > time.Hour
	return e
}

func (f *fakeNode) Search(q directory.Query) ([]api.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []api.Entry{}
	for _, r := range f.st.Search(q) {
		if l, ok := f.st.Lookup(r.Key); ok {
			out = append(out, f.view(l))
		}
	}
	return out, nil
}

func (f *fakeNode) Show(ref string) (api.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.st.Lookup(ref); ok {
		return f.view(l), nil
	}
	return api.Entry{}, fmt.Errorf("no entry %q in the local copy", ref)
}

func (f *fakeNode) Mine() ([]api.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []api.Entry{}
	for _, l := range f.st.Entries(f.me.Public()) {
		out = append(out, f.view(l))
	}
	return out, nil
}

func (f *fakeNode) publish(e *directory.Entry) (api.Entry, error) {
	r, err := directory.NewRecord(f.nw.ID, e, f.me)
	if err != nil {
		return api.Entry{}, err
	}
	if _, err := f.st.Apply(r); err != nil {
		return api.Entry{}, err
	}
	l, _ := f.st.Lookup("entry/" + f.me.Public().Hex() + "/" + e.ID)
	return f.view(l), nil
}

func (f *fakeNode) Publish(_ context.Context, req api.PublishRequest) (api.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := directory.CheckService(req.Service); err != nil {
		return api.Entry{}, fmt.Errorf("entry is not valid: %v", err)
	}
	days := req.ExpiresInDays
	if days == 0 {
		days = 90
	}
	if days < 1 || days > 180 {
		return api.Entry{}, errors.New("expires_in_days must be between 1 and 180")
	}
	now := time.Now()
	seq := uint64(1)
	if l, ok := f.st.Lookup("entry/" + f.me.Public().Hex() + "/" + req.ID); ok {
		seq = l.Entry.Seq + 1
	}
	return f.publish(&directory.Entry{ID: req.ID, Seq: seq, Issued: now.Unix(), Expires: now.Add(time.Duration(days) * 24 * time.Hour).Unix(), Service: req.Service})
}

func (f *fakeNode) Remove(_ context.Context, id string) (api.Entry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cur, ok := f.st.Lookup("entry/" + f.me.Public().Hex() + "/" + id)
	if !ok || cur.Entry.Deleted {
		return api.Entry{}, fmt.Errorf("no entry %q", id)
	}
	now := time.Now()
	return f.publish(&directory.Entry{ID: id, Seq: cur.Entry.Seq + 1, Issued: now.Unix(), Expires: max(cur.Entry.Expires, now.Add(24*time.Hour).Unix()), Deleted: true})
}

func (f *fakeNode) CreateInvite(req api.InviteRequest) (api.Invite, error) {
	b := make([]byte, 300) // about the size of a real code with two addresses
	rand.Read(b)
	return api.Invite{Code: "ceiba-invite:" + base64.RawURLEncoding.EncodeToString(b), Role: req.Role, Expires: time.Now().Add(req.Expires)}, nil
}

func (f *fakeNode) proposalView(p directory.Proposal) api.Proposal {
	v := api.Proposal{ID: p.ID.String(), Threshold: p.Threshold, Effective: p.Effective, Approvals: []string{}}
	for _, k := range p.Approvers {
		v.Approvals = append(v.Approvals, directory.Fingerprint(k))
		v.Mine = v.Mine || k == f.me.Public()
	}
	switch b := p.Body.(type) {
	case *directory.Charter:
		v.Kind, v.Summary = "charter", fmt.Sprintf("charter version %d", b.Version)
	case *directory.Membership:
		v.Kind, v.Summary = "admit", fmt.Sprintf("admit %q (%s)", b.Name, directory.Fingerprint(b.Org))
	case *directory.Revocation:
		v.Kind, v.Summary = "revoke", "revoke "+directory.Fingerprint(b.Key)+": "+b.Reason
	case *directory.Epoch:
		v.Kind, v.Summary = "epoch", fmt.Sprintf("read key epoch %d", b.Number)
	}
	return v
}

func (f *fakeNode) Proposals() ([]api.Proposal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []api.Proposal{}
	for _, p := range f.st.Proposals() {
		out = append(out, f.proposalView(p))
	}
	return out, nil
}

func (f *fakeNode) Approve(_ context.Context, ref string) (api.Proposal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, p := range f.st.Proposals() {
		if strings.HasPrefix(p.ID.String(), ref) && len(ref) >= 6 {
			r, err := directory.NewApproval(&directory.Record{Version: directory.FormatVersion, Type: p.Type, Network: f.nw.ID, Body: p.Raw}, f.me)
			if err != nil {
				return api.Proposal{}, err
			}
			if _, err := f.st.Apply(r); err != nil {
				return api.Proposal{}, err
			}
			p, _ = f.st.Proposal(p.ID)
			return f.proposalView(p), nil
		}
	}
	return api.Proposal{}, fmt.Errorf("no proposal %s", ref)
}

func (f *fakeNode) Propose(_ context.Context, req api.ProposeRequest) (api.Proposal, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if req.Kind != "revoke" {
		return api.Proposal{}, fmt.Errorf("the fake proposes only revocations")
	}
	fp, err := directory.NormalizeFingerprint(req.Key)
	if err != nil {
		return api.Proposal{}, fmt.Errorf("%q is neither a key nor a fingerprint: %v", req.Key, err)
	}
	for _, m := range f.st.Members() {
		if directory.Fingerprint(m.Key) == fp {
			r, err := directory.NewRecord(f.nw.ID, &directory.Revocation{Key: m.Key, Charter: 1, Reason: req.Reason, Issued: time.Now().Unix()}, f.me)
			if err != nil {
				return api.Proposal{}, err
			}
			if _, err := f.st.Apply(r); err != nil {
				return api.Proposal{}, err
			}
			p, _ := f.st.Proposal(r.ProposalID())
			return f.proposalView(p), nil
		}
	}
	return api.Proposal{}, fmt.Errorf("no member with fingerprint %s is known to this node", fp)
}

func (f *fakeNode) Rotate(context.Context) (api.Proposal, error) {
	return api.Proposal{}, errors.New("the fake does not rotate keys")
}

func (f *fakeNode) WipeAndStop() error { return errors.New("the fake does not wipe") }
