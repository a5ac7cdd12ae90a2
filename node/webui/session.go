package webui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/ceiba-network/ceiba/node/api"
)

// Sessions live only in this process's memory: a restart signs everyone
// out, and nothing on disk or in the browser can be replayed as the token.
const (
	sessionIdle   = 30 * time.Minute
	sessionMaxAge = 12 * time.Hour
	maxSessions   = 32 // sign-ins need the token, so this bounds only mistakes
	maxInvites    = 5  // invites a session keeps for their QR codes
)

type session struct {
	csrf    string
	created time.Time
	seen    time.Time
	invites []shownInvite
}

// shownInvite is an invite this session created, kept so its QR code can
// be served without the secret code ever appearing in a URL.
type shownInvite struct {
	id     string
	invite api.Invite
}

type sessionStore struct {
	mu  sync.Mutex
	now func() time.Time
	// Keyed by a hash of the cookie value, so the map's contents are not
	// themselves usable cookies.
	m map[[32]byte]*session
}

func newSessionStore() *sessionStore {
	return &sessionStore{now: time.Now, m: map[[32]byte]*session{}}
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// create starts a session and returns its cookie value.
func (s *sessionStore) create() (string, *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	s.sweepLocked(now)
	for len(s.m) >= maxSessions {
		var oldest [32]byte
		var at time.Time
		for k, v := range s.m {
			if at.IsZero() || v.seen.Before(at) {
				oldest, at = k, v.seen
			}
		}
		delete(s.m, oldest)
	}
	id := randomToken()
	ss := &session{csrf: randomToken(), created: now, seen: now}
	s.m[sha256.Sum256([]byte(id))] = ss
	return id, ss
}

// get returns the live session for a cookie value, refreshing its idle
// clock.
func (s *sessionStore) get(id string) *session {
	if id == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	k := sha256.Sum256([]byte(id))
	ss := s.m[k]
	if ss == nil {
		return nil
	}
	if now.Sub(ss.seen) > sessionIdle || now.Sub(ss.created) > sessionMaxAge {
		delete(s.m, k)
		return nil
	}
	ss.seen = now
	return ss
}

func (s *sessionStore) end(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, sha256.Sum256([]byte(id)))
}

func (s *sessionStore) sweepLocked(now time.Time) {
	for k, ss := range s.m {
		if now.Sub(ss.seen) > sessionIdle || now.Sub(ss.created) > sessionMaxAge {
			delete(s.m, k)
		}
	}
}

func (s *sessionStore) addInvite(ss *session, inv api.Invite) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := randomToken()[:16]
	ss.invites = append(ss.invites, shownInvite{id: id, invite: inv})
	if len(ss.invites) > maxInvites {
		ss.invites = ss.invites[len(ss.invites)-maxInvites:]
	}
	return id
}

func (s *sessionStore) invite(ss *session, id string) (api.Invite, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, v := range ss.invites {
		if v.id == id {
			return v.invite, true
		}
	}
	return api.Invite{}, false
}

// checkCSRF compares a form's token with the session's in constant time.
func (ss *session) checkCSRF(got string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(ss.csrf)) == 1
}

// cookieName scopes a cookie to this node. Browsers share cookies between
// ports of one host, so two nodes on one machine (a steward's and an
// organization's) would otherwise sign each other out.
func cookieName(r *http.Request, base string) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if _, port, err := net.SplitHostPort(a.String()); err == nil {
			return base + "_" + port
		}
	}
	return base
}
