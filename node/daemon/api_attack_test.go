package daemon

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/node/api"
)

// The local API's adversary is a web page in the user's browser (which
// can make the browser send requests to 127.0.0.1, with a foreign Origin
// or, through DNS rebinding, a foreign Host) and a local process without
// the token. These tests extend cmd/ceiba/cli_test.go's three checks to
// every route that writes or exports, and add bodies, paths and headers.

type apiTarget struct {
	t     *testing.T
	d     *Daemon
	base  string
	port  string
	token string
}

func joinedDaemon(t *testing.T) *apiTarget {
	t.Helper()
	d := startTestDaemon(t, "steward")
	if _, err := d.CreateNetwork(context.Background(), api.NetworkRequest{Name: "Red", Threshold: 1}); err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(d.APIAddr())
	return &apiTarget{t: t, d: d, base: "http://" + d.APIAddr(), port: port, token: d.token}
}

// do sends a request and returns its status and decoded error message.
func (a *apiTarget) do(method, path string, body io.Reader, hdr map[string]string) (int, string) {
	a.t.Helper()
	req, err := http.NewRequest(method, a.base+path, body)
	if err != nil {
		a.t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if strings.Contains(string(b), a.token) {
		a.t.Fatalf("%s %s: the response carries the API token", method, path)
	}
	var e api.Error
	json.Unmarshal(b, &e)
	return resp.StatusCode, e.Error
}

// raw sends a request line and headers exactly as given, so no client
// normalizes the path, and returns the status and body.
func (a *apiTarget) raw(requestLine string, headers ...string) (int, string) {
	a.t.Helper()
	c, err := net.DialTimeout("tcp", a.d.APIAddr(), 5*time.Second)
	if err != nil {
		a.t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "%s\r\nHost: 127.0.0.1:%s\r\n", requestLine, a.port)
	for _, h := range headers {
		fmt.Fprintf(c, "%s\r\n", h)
	}
	fmt.Fprintf(c, "Connection: close\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		a.t.Fatalf("%s: %v", requestLine, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var writeRoutes = []struct{ method, path, body string }{
	{http.MethodPost, "/v1/entries", `{"id":"x"}`},
	{http.MethodDelete, "/v1/entries/x", ""},
	{http.MethodPost, "/v1/network", `{"name":"Otra"}`},
	{http.MethodPost, "/v1/draft/sign", `{}`},
	{http.MethodPost, "/v1/invites", `{"role":"member"}`},
	{http.MethodPost, "/v1/invites/accept", `{"code":"ceiba-invite:x"}`},
	{http.MethodPost, "/v1/proposals", `{}`},
	{http.MethodPost, "/v1/proposals/abcdef12/approve", ""},
	{http.MethodPost, "/v1/revoke/self", ""},
	{http.MethodPost, "/v1/revoke/certificate", "x"},
	{http.MethodPost, "/v1/rotate", ""},
	{http.MethodGet, "/v1/export", ""},
	{http.MethodPost, "/v1/import", "x"},
}

// Every route that writes or exports refuses a request without the token
// (401), with a wrong one (403), with the token anywhere but its header,
// and changes nothing: the node is not revoked, no key rotated, no invite
// issued, nothing exported.
func TestAPIWritesNeedTheToken(t *testing.T) {
	a := joinedDaemon(t)
	before := a.d.Node().State().Digest()
	invitesBefore := len(a.d.invites.Pending)
	for _, r := range writeRoutes {
		for _, c := range []struct {
			name string
			hdr  map[string]string
			path string
			want int
		}{
			{"no token", nil, r.path, http.StatusUnauthorized},
			{"wrong token", map[string]string{api.TokenHeader: "0123456789abcdef"}, r.path, http.StatusForbidden},
			{"token with a character changed", map[string]string{api.TokenHeader: a.token[:len(a.token)-1] + "x"}, r.path, http.StatusForbidden},
			{"token as a prefix", map[string]string{api.TokenHeader: a.token[:8]}, r.path, http.StatusForbidden},
			{"token in the query", nil, r.path + "?token=" + a.token, http.StatusUnauthorized},
			{"token as a bearer", map[string]string{"Authorization": "Bearer " + a.token}, r.path, http.StatusUnauthorized},
			{"token as a cookie", map[string]string{"Cookie": "token=" + a.token}, r.path, http.StatusUnauthorized},
		} {
			status, msg := a.do(r.method, c.path, strings.NewReader(r.body), c.hdr)
			if status != c.want || msg == "" {
				t.Errorf("%s %s, %s: status %d %q, want %d with a message", r.method, r.path, c.name, status, msg, c.want)
			}
		}
	}
	if a.d.Node().State().Digest() != before || a.d.Node().State().IsRevoked(a.d.me().Public()) {
		t.Fatal("a refused request changed the node")
	}
	if len(a.d.invites.Pending) != invitesBefore {
		t.Fatal("a refused request issued an invite")
	}
}

// Requests addressed to another host name (DNS rebinding: a page on
// evil.example whose name now resolves to 127.0.0.1) are refused with 421,
// reads included (a read shows the whole directory); cross-origin writes
// are refused with 403 even with the token; preflights get no CORS grant.
func TestAPIRefusesForeignHostsAndOrigins(t *testing.T) {
	a := joinedDaemon(t)
	p := a.port
	for _, host := range []string{
		"evil.example:" + p, "evil.example", "127.0.0.1:1", "127.0.0.1", "127.0.0.1.evil.example:" + p,
		"localhost.:" + p, "0.0.0.0:" + p, "127.0.0.2:" + p, "[::ffff:127.0.0.1]:" + p, "LOCALHOST.evil:" + p,
	} {
		for _, r := range []struct{ method, path string }{
			{http.MethodGet, "/v1/status"}, {http.MethodGet, "/v1/search?q=a"}, {http.MethodGet, "/v1/export"},
			{http.MethodPost, "/v1/rotate"}, {http.MethodGet, "/"},
		} {
			status, msg := a.do(r.method, r.path, nil, map[string]string{"Host": host, api.TokenHeader: a.token})
			if status != http.StatusMisdirectedRequest || msg == "" {
				t.Errorf("Host %q, %s %s: status %d %q, want 421", host, r.method, r.path, status, msg)
			}
		}
	}
	for _, host := range []string{"127.0.0.1:" + p, "localhost:" + p, "[::1]:" + p} {
		if status, _ := a.do(http.MethodGet, "/v1/status", nil, map[string]string{"Host": host}); status != http.StatusOK {
			t.Errorf("Host %q: status %d, want 200", host, status)
		}
	}
	for _, origin := range []string{
		"http://evil.example", "null", "https://127.0.0.1:" + p, "http://127.0.0.1:" + p + ".evil.example",
		"http://127.0.0.1:1", "http://evil.example@127.0.0.1:" + p, "file://", "http://localhost.:" + p,
	} {
		status, msg := a.do(http.MethodPost, "/v1/rotate", nil, map[string]string{"Origin": origin, api.TokenHeader: a.token})
		if status != http.StatusForbidden || msg == "" {
			t.Errorf("Origin %q: status %d %q, want 403", origin, status, msg)
		}
	}
	// A preflight from a page: no grant, so the browser never sends the
	// token header cross-origin.
	req, _ := http.NewRequest(http.MethodOptions, a.base+"/v1/export", nil)
	req.Header.Set("Origin", "http://evil.example")
	req.Header.Set("Access-Control-Request-Method", "GET")
	req.Header.Set("Access-Control-Request-Headers", api.TokenHeader)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := resp.Header.Get("Access-Control-Allow-Origin") + resp.Header.Get("Access-Control-Allow-Headers"); h != "" {
		t.Fatalf("a preflight from a foreign origin was granted: %q", h)
	}
	if a.d.Node().State().CurrentEpoch() != 1 {
		t.Fatal("a refused request rotated the key")
	}
}

// Bodies above the limit get 413, malformed ones 400, and neither changes
// anything; a hostile bundle is refused or its records are, one by one.
func TestAPIBodies(t *testing.T) {
	a := joinedDaemon(t)
	before := a.d.Node().State().Digest()
	tok := map[string]string{api.TokenHeader: a.token}
	huge := func() io.Reader { return io.LimitReader(spaces{}, MaxBody+1) }
	for _, path := range []string{"/v1/import", "/v1/entries"} { // a raw body and a JSON one
		if status, msg := a.do(http.MethodPost, path, huge(), tok); status != http.StatusRequestEntityTooLarge || msg == "" {
			t.Errorf("POST %s with %d bytes: status %d %q, want 413", path, MaxBody+1, status, msg)
		}
	}
	for _, c := range []struct{ path, body string }{
		{"/v1/entries", `{"id":`},
		{"/v1/entries", `{"id":"x","nmae":"typo"}`},
		{"/v1/entries", `[1,2,3]`},
		{"/v1/entries", strings.Repeat("[", 100000)},
		{"/v1/invites", `{"role":"admin"}`},
		{"/v1/invites/accept", `{"code":"ceiba-invite:` + strings.Repeat("A", 400000) + `"}`},
		{"/v1/import", ""},
		{"/v1/import", "not cbor at all"},
		{"/v1/import", "\xbf\xff"},                             // an indefinite-length map
		{"/v1/import", "\x9b\x00\x00\x00\x00\xff\xff\xff\xff"}, // an array claiming 4 billion elements
		{"/v1/import", strings.Repeat("\x81", 1000) + "\x00"},  // nesting far past the limit
	} {
		status, msg := a.do(http.MethodPost, c.path, strings.NewReader(c.body), tok)
		if status != http.StatusBadRequest || msg == "" {
			short := c.body
			if len(short) > 40 {
				short = short[:40] + "…"
			}
			t.Errorf("POST %s %q: status %d %q, want 400", c.path, short, status, msg)
		}
	}
	// A bundle that decodes, with garbage records and another network's.
	other := startTestDaemon(t, "otra")
	if _, err := other.CreateNetwork(context.Background(), api.NetworkRequest{Name: "Otra", Threshold: 1}); err != nil {
		t.Fatal(err)
	}
	foreign, err := other.Export()
	if err != nil {
		t.Fatal(err)
	}
	if status, msg := a.do(http.MethodPost, "/v1/import", strings.NewReader(string(foreign)), tok); status != http.StatusBadRequest || !strings.Contains(msg, "another network") {
		t.Errorf("importing another network's bundle: %d %q", status, msg)
	}
	junk, _ := codeEnc.Marshal(&bundle{Network: a.d.Node().State().Network(), Records: [][]byte{[]byte("x"), make([]byte, 300), nil}})
	req, _ := http.NewRequest(http.MethodPost, a.base+"/v1/import", strings.NewReader(string(junk)))
	req.Header.Set(api.TokenHeader, a.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var res ImportResult
	json.NewDecoder(resp.Body).Decode(&res)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || res.Rejected != 3 || res.Added != 0 || len(res.Reasons) != 3 {
		t.Errorf("importing a bundle of garbage records: %d %+v, want each refused with a reason", resp.StatusCode, res)
	}
	if a.d.Node().State().Digest() != before {
		t.Fatal("a refused body changed the node")
	}
}

// spaces is an endless body of blanks: valid JSON whitespace, so a
// decoder reads on until the size limit stops it.
type spaces struct{}

func (spaces) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = ' '
	}
	return len(p), nil
}

// Path tricks: dot segments, encoded slashes and dots, doubled slashes,
// case, NUL bytes, and file names in the query of export and import. None
// reaches a handler it should not, none writes or reads a file outside
// what the node owns, and the export bundle and the token are never
// served without the token.
func TestAPIPathTricks(t *testing.T) {
	a := joinedDaemon(t)
	home := a.d.home.Dir
	outside := filepath.Join(t.TempDir(), "fuera")
	snapshot := func() map[string]int64 {
		files := map[string]int64{}
		filepath.Walk(home, func(p string, fi os.FileInfo, err error) error {
			if err == nil && !fi.IsDir() && !strings.Contains(p, string(filepath.Separator)+"data"+string(filepath.Separator)) {
				files[p] = fi.Size()
			}
			return nil
		})
		return files
	}
	before := snapshot()
	exported, err := a.d.Export()
	if err != nil {
		t.Fatal(err)
	}
	// A bundle begins with the network ID: its presence in a body means
	// the export leaked.
	net := a.d.Node().State().Network()
	leaks := func(body string) bool {
		return strings.Contains(body, string(net[:])) || strings.Contains(body, a.token) || len(body) >= len(exported) && strings.Contains(body, string(exported[:64]))
	}
	for _, line := range []string{
		"GET /v1/../v1/export HTTP/1.1",
		"GET /v1/./export HTTP/1.1",
		"GET /v1//export HTTP/1.1",
		"GET //v1/export HTTP/1.1",
		"GET /v1/%65xport HTTP/1.1",
		"GET /v1%2fexport HTTP/1.1",
		"GET /V1/EXPORT HTTP/1.1",
		"GET /v1/export/ HTTP/1.1",
		"GET /v1/export%00 HTTP/1.1",
		"GET /v1/export;.js HTTP/1.1",
		"GET /static/../v1/export HTTP/1.1",
		"GET /static/..%2f..%2fapi.token HTTP/1.1",
		"GET /static/%2e%2e/%2e%2e/api.token HTTP/1.1",
		"GET /static/../../keys.age HTTP/1.1",
		"GET /../../api.token HTTP/1.1",
		"GET /api.token HTTP/1.1",
		"GET /keys.age HTTP/1.1",
		"GET /v1/export?out=" + outside + " HTTP/1.1",
		"POST /v1/import?file=/etc/passwd HTTP/1.1",
		"POST /v1/import?path=../../../etc/passwd HTTP/1.1",
		"DELETE /v1/entries/..%2f..%2fapi.token HTTP/1.1",
		"DELETE /v1/entries/../../api.token HTTP/1.1",
		"POST /v1/proposals/..%2f..%2frevoke%2fself/approve HTTP/1.1",
		"POST /v1/rotate/../revoke/self HTTP/1.1",
		"GET http://evil.example/v1/export HTTP/1.1",
	} {
		status, body := a.raw(line, "Content-Length: 0")
		t.Logf("%s → %d", strings.TrimSuffix(line, " HTTP/1.1"), status)
		if status == http.StatusOK && leaks(body) {
			t.Errorf("%q without the token: 200 with the bundle or the token", line)
		}
		if status == http.StatusOK && strings.HasPrefix(line, "POST") || strings.HasPrefix(line, "DELETE") && status < 300 {
			t.Errorf("%q without the token: status %d", line, status)
		}
	}
	// With the token, a file name in the query is ignored, not used.
	for _, line := range []string{
		"GET /v1/export?out=" + outside + "&file=" + outside + " HTTP/1.1",
		"POST /v1/import?file=" + filepath.Join(home, "keys.age") + " HTTP/1.1",
		"DELETE /v1/entries/..%2f..%2fkeys.age HTTP/1.1",
		"DELETE /v1/entries/%2e%2e HTTP/1.1",
	} {
		status, _ := a.raw(line, api.TokenHeader+": "+a.token, "Content-Length: 0")
		if (strings.HasPrefix(line, "POST") || strings.HasPrefix(line, "DELETE")) && status < 300 {
			t.Errorf("%q with the token: status %d, want a refusal (nothing to import, no such entry)", line, status)
		}
	}
	if _, err := os.Stat(outside); err == nil {
		t.Fatal("an export wrote a file named in the query")
	}
	after := snapshot()
	for p, size := range before {
		if after[p] != size && !strings.HasSuffix(p, "invites.cbor") {
			t.Errorf("%s changed size (%d → %d) during the path tricks", p, size, after[p])
		}
	}
	if _, err := os.Stat(filepath.Join(home, "keys.age")); err != nil {
		t.Fatal("the keystore is gone")
	}
	if a.d.Node().State().IsRevoked(a.d.me().Public()) {
		t.Fatal("a path trick revoked the node")
	}
}

// An import whose caller has gone (the CLI gave up) stops instead of
// storing the rest of the bundle without gossiping it, and says how far
// it got.
func TestImportStopsWhenItsCallerIsGone(t *testing.T) {
	a := joinedDaemon(t)
	exported, err := a.d.Export()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := a.d.Import(ctx, exported)
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "import stopped after 0 of the bundle's") {
		t.Fatalf("import under a cancelled request: %+v, %v; want it stopped before the first record", res, err)
	}
	if res.Added+res.Known+res.Rejected != 0 {
		t.Fatalf("import under a cancelled request went through records: %+v", res)
	}
	// The same bundle imports in full once a caller waits for it.
	if res, err = a.d.Import(context.Background(), exported); err != nil || res.Known == 0 || res.Rejected != 0 {
		t.Fatalf("import of the daemon's own export: %+v, %v; want every record already known", res, err)
	}
}
