package daemon

import (
	"net/http"
	"testing"

	"github.com/ceiba-network/ceiba/node/api"
)

// TestClientTokenRuleMatchesServer: api.NeedsToken, which decides when the
// client sends the token and which routes the daemon guards, names exactly
// the routes the daemon refuses without it (every route of the API, by
// hand: one registered around the rule would show here).
func TestClientTokenRuleMatchesServer(t *testing.T) {
	d := startTestDaemon(t, "steward")
	for _, r := range []struct{ method, path string }{
		{"GET", "/v1/status"}, {"GET", "/v1/search?q=x"}, {"GET", "/v1/entry?ref=x"},
		{"GET", "/v1/entries"}, {"GET", "/v1/proposals"}, {"GET", "/v1/peers"},
		{"GET", "/v1/key"}, {"GET", "/healthz"}, {"GET", "/v1/export"},
		{"POST", "/v1/entries"}, {"DELETE", "/v1/entries/x"}, {"POST", "/v1/network"},
		{"POST", "/v1/draft/sign"}, {"POST", "/v1/invites"}, {"POST", "/v1/invites/accept"},
		{"POST", "/v1/proposals"}, {"POST", "/v1/proposals/x/approve"},
		{"POST", "/v1/revoke/self"}, {"POST", "/v1/revoke/certificate"},
		{"POST", "/v1/rotate"}, {"POST", "/v1/import"}, {"POST", "/v1/wipe"},
	} {
		req, err := http.NewRequest(r.method, "http://"+d.APIAddr()+r.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		refused := resp.StatusCode == http.StatusUnauthorized
		if need := api.NeedsToken(r.method, r.path); need != refused {
			t.Errorf("%s %s: the daemon answers %d without the token, but NeedsToken says %v", r.method, r.path, resp.StatusCode, need)
		}
	}
}
