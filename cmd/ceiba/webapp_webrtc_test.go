package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/internal/wasmtest"
	"github.com/ceiba-network/ceiba/node/api"
	"github.com/ceiba-network/ceiba/node/daemon"
)

// Issue 16: a phone whose browser has no WebTransport (Safari, some
// Android browsers) joins over WebRTC. The page's WebTransport is removed
// before the app's scripts run, as such a browser has it. A person pastes
// the code alone: the code carries the node's WebRTC address (its
// certificate hash is derived from the node's key and does not rotate),
// the code is redeemed over WebRTC, the phone is admitted and syncs, and a
// search for "asesoria" finds the entry. The organization's node holds the
// phone's connection over WebRTC and none over WebTransport. A second
// phone has a code without a WebRTC address (as a node that does not list
// one gives) and the node's loopback WebRTC address typed in, as a person
// handed a browser address with the code, and finds the entry too.
func TestWebappOverWebRTC(t *testing.T) {
	nodeJS := wasmtest.Node(t, "../../webapp/node_modules/esbuild/package.json")
	needChromium(t)
	steward, org, _, inv := orgWithReaderInvite(t)
	stewardPeer := daemonStatus(t, steward).PeerID
	status := daemonStatus(t, org)
	rtc := browserAddr(t, status.Addrs, "webrtc-direct")

	site := buildWebapp(t, nodeJS)
	srv := httptest.NewServer(http.FileServer(http.Dir(site)))
	t.Cleanup(srv.Close)
	ctx := startChromium(t)

	// withoutWebTransport opens the app as a browser without WebTransport
	// shows it: the tab is opened, told to drop WebTransport from every
	// document it loads from then on, and loaded again.
	withoutWebTransport := func() context.Context {
		tctx, problems := appTab(t, ctx, srv.URL+"/?lang=en", "en", nil)
		t.Cleanup(func() {
			for _, p := range problems() {
				t.Errorf("the browser reported %s", p)
			}
		})
		if _, err := chromedp.Call(tctx, page.AddScriptToEvaluateOnNewDocument,
			page.AddScriptToEvaluateOnNewDocumentParams{Source: `delete globalThis.WebTransport`}); err != nil {
			t.Fatal(err)
		}
		do(t, tctx, chromedp.Reload(), chromedp.WaitVisible(chromedp.CSS("#go")))
		if kind, err := chromedp.Run(tctx, chromedp.Evaluate[string](`typeof WebTransport`)); err != nil || kind != "undefined" {
			t.Fatalf("the page still has WebTransport (%q, %v)", kind, err)
		}
		return tctx
	}
	joinAndFind := func(tctx context.Context, code, node string) {
		t.Helper()
		do(t, tctx,
			chromedp.SetValue(chromedp.CSS("#code"), code),
			chromedp.SetValue(chromedp.CSS("#pass"), "una frase de paso larga"),
			// chromedp cannot set an empty value.
			chromedp.Evaluate[chromedp.Void](`document.getElementById('node').value = `+strconv.Quote(node)),
			chromedp.Click(chromedp.CSS("#go")))
		// Joined, or failed: the error ends the wait at once.
		waitUntil(t, 2*time.Minute, "the phone to join", func() bool {
			state, err := chromedp.Run(tctx, chromedp.Evaluate[[]string](`[String(document.getElementById('directory').hidden), document.getElementById('error').hidden ? '' : document.getElementById('errorText').textContent + ' ' + document.getElementById('errorDetail').textContent]`))
			if err != nil || len(state) != 2 {
				return false
			}
			if state[1] != "" {
				t.Fatalf("joining failed: %s", state[1])
			}
			return state[0] == "false"
		})
		search(t, tctx, "asesoria")
		if found := waitText(t, tctx, "#results li h2", "Asesoría"); found != "Asesoría jurídica para personas defensoras" {
			t.Errorf("a search for \"asesoria\" found %q, want the organization's entry", found)
		}
		waitText(t, tctx, "#net", "Up to date")
	}

	// The code alone.
	if !strings.Contains(codeAddrList(t, inv.Code), "/webrtc-direct/certhash/") {
		t.Fatalf("the reader code carries no WebRTC address: %s", codeAddrList(t, inv.Code))
	}
	t.Logf("the code's addresses: %s", codeAddrList(t, inv.Code))
	first := withoutWebTransport()
	if placeholder, err := chromedp.Run(first, chromedp.Evaluate[string](`document.getElementById('node').placeholder`)); err != nil || !strings.Contains(placeholder, "/webrtc-direct/") {
		t.Errorf("without WebTransport the node field suggests %q (%v), want a WebRTC address", placeholder, err)
	}
	joinAndFind(first, inv.Code, "")
	// The phone's connection: the one it holds between syncs (the guest
	// connection it redeemed the code on may not be gone yet).
	if r, w := connsOver(t, org, stewardPeer); r == 0 || w != 0 {
		t.Errorf("the organization's node holds %d WebRTC and %d WebTransport connections, want the phone's over WebRTC", r, w)
	}

	// A second phone, given a code without WebRTC and the node's loopback
	// WebRTC address.
	second := withoutWebTransport()
	bare := withoutBrowserAddrs(t, readerInvite(t, org).Code)
	if list := codeAddrList(t, bare); strings.Contains(list, "/webrtc-direct") || list == "" {
		t.Fatalf("the trimmed code carries %q", list)
	}
	// Without the address it has nothing to dial, and says so.
	do(t, second,
		chromedp.SetValue(chromedp.CSS("#code"), bare),
		chromedp.SetValue(chromedp.CSS("#pass"), "una frase de paso larga"),
		chromedp.Click(chromedp.CSS("#go")))
	waitText(t, second, "#errorText", "Could not reach the node")
	joinAndFind(second, bare, rtc)
	if r, w := connsOver(t, org, stewardPeer); r < 2 || w != 0 {
		t.Errorf("the organization's node holds %d WebRTC and %d WebTransport connections, want the two phones' over WebRTC", r, w)
	}
}

// Issue 16: a phone whose browser has WebTransport joins over it, with
// the code and the node's WebTransport address typed in, and keeps every
// address of the node it can dial, the code's WebRTC one too. The
// node's WebTransport address then stops working, as it does when the
// node's certificate rotates (about every two weeks; the hash is derived
// from the node's key and the date, so a restart alone keeps it): here
// the organization's node is restarted with WebTransport on another port
// and WebRTC on the same one. An entry is published after the restart.
// The phone reloads, unlocks, tries the stale address, reaches the node
// over WebRTC, finds the entry and says it is up to date; its keystore
// then keeps the WebRTC address first, so the next visit dials it first
// and does not try the stale one at all.
func TestWebappFallsBackToWebRTCWhenWebTransportGoesStale(t *testing.T) {
	nodeJS := wasmtest.Node(t, "../../webapp/node_modules/esbuild/package.json")
	needChromium(t)
	steward, org, orgAPI, stopOrg := stewardAndMember(t)
	stewardPeer := daemonStatus(t, steward).PeerID
	publishEntry(t, org, "", "")
	inv := readerInvite(t, org)
	status := daemonStatus(t, org)
	wt := browserAddr(t, status.Addrs, "webtransport")
	rtc := browserAddr(t, status.Addrs, "webrtc-direct")
	if !strings.Contains(codeAddrList(t, inv.Code), "/webrtc-direct/certhash/") {
		t.Fatalf("the reader code carries no WebRTC address: %s", codeAddrList(t, inv.Code))
	}

	site := buildWebapp(t, nodeJS)
	srv := httptest.NewServer(http.FileServer(http.Dir(site)))
	t.Cleanup(srv.Close)
	ctx := startChromium(t)
	// After the restart the app dials the stale WebTransport address
	// first, as it should, and Chromium says that failed; staleDials
	// counts those messages.
	var restarted atomic.Bool
	var staleDials atomic.Int32
	triesStaleAddr := func(text string) bool {
		if restarted.Load() && strings.Contains(text, "/.well-known/libp2p-webtransport") {
			staleDials.Add(1)
			return true
		}
		return false
	}
	tab, problems := appTab(t, ctx, srv.URL+"/?lang=en", "en", triesStaleAddr)
	t.Cleanup(func() {
		for _, p := range problems() {
			t.Errorf("the browser reported %s", p)
		}
	})
	const pass = "una frase de paso larga"
	do(t, tab,
		chromedp.SetValue(chromedp.CSS("#code"), inv.Code),
		chromedp.SetValue(chromedp.CSS("#pass"), pass),
		chromedp.SetValue(chromedp.CSS("#node"), wt),
		chromedp.Click(chromedp.CSS("#go")),
		chromedp.WaitVisible(chromedp.CSS("#q")))
	search(t, tab, "asesoria")
	waitText(t, tab, "#results li h2", "Asesoría jurídica")
	waitText(t, tab, "#net", "Up to date")
	if r, w := connsOver(t, org, stewardPeer); w == 0 || r != 0 {
		t.Errorf("the organization's node holds %d WebRTC and %d WebTransport connections, want the phone's over WebTransport", r, w)
	}
	keystore, nodes := keptNodes(t, tab, pass)
	t.Logf("the keystore keeps %q", nodes)
	if len(nodes) == 0 || nodes[0] != wt || !slices.Contains(nodes, rtc) {
		t.Errorf("after joining over %s the keystore keeps %q, want that address first and the code's %s too", wt, nodes, rtc)
	}

	// The app closed, the node's WebTransport address goes stale.
	do(t, tab, chromedp.Navigate("about:blank"))
	stopOrg()
	h := daemon.Home{Dir: org}
	c, err := h.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	rtcListen, _, _ := strings.Cut(rtc, "/certhash/")
	for i, l := range c.Node.Listen {
		if strings.HasSuffix(l, "/webrtc-direct") {
			c.Node.Listen[i] = rtcListen
		}
	}
	if err := h.SaveConfig(c); err != nil {
		t.Fatal(err)
	}
	restarted.Store(true)
	startDaemon(t, org, orgAPI)
	after := daemonStatus(t, org)
	if got := browserAddr(t, after.Addrs, "webtransport"); got == wt {
		t.Fatalf("the restarted node's WebTransport address is still %s", wt)
	}
	if got := browserAddr(t, after.Addrs, "webrtc-direct"); got != rtc {
		t.Fatalf("the restarted node's WebRTC address is %s, want %s as before", got, rtc)
	}
	publishEntry(t, org, "clinica-comunitaria", "Clínica comunitaria de salud")

	do(t, tab, chromedp.Navigate(srv.URL+"/?lang=en"), chromedp.WaitVisible(chromedp.CSS("#unlockPass")),
		chromedp.SetValue(chromedp.CSS("#unlockPass"), pass), chromedp.Click(chromedp.CSS("#open")),
		chromedp.WaitVisible(chromedp.CSS("#q")))
	search(t, tab, "clinica")
	waitText(t, tab, "#results li h2", "Clínica comunitaria de salud")
	waitText(t, tab, "#net", "Up to date")
	if r, _ := connsOver(t, org, stewardPeer); r == 0 {
		t.Errorf("the organization's node holds no WebRTC connection after the phone synced")
	}
	// The keystore is made again with the address that worked first.
	waitUntil(t, time.Minute, "the phone to keep its keystore again", func() bool {
		v, _ := keptKeystore(t, tab)
		return v != "" && v != keystore
	})
	if _, nodes := keptNodes(t, tab, pass); len(nodes) == 0 || nodes[0] != rtc || !slices.Contains(nodes, wt) {
		t.Errorf("after syncing over %s the keystore keeps %q, want that address first and the others still", rtc, nodes)
	}
	stale := staleDials.Load()
	if stale == 0 {
		t.Fatal("Chromium reported no failed WebTransport dial after the restart")
	}
	t.Logf("Chromium reported %d failed WebTransport dials after the restart", stale)
	do(t, tab, chromedp.Navigate("about:blank"), chromedp.Navigate(srv.URL+"/?lang=en"), chromedp.WaitVisible(chromedp.CSS("#unlockPass")),
		chromedp.SetValue(chromedp.CSS("#unlockPass"), pass), chromedp.Click(chromedp.CSS("#open")),
		chromedp.WaitVisible(chromedp.CSS("#q")))
	waitText(t, tab, "#net", "Up to date")
	if n := staleDials.Load(); n != stale {
		t.Errorf("the next visit dialed the stale WebTransport address again (%d failed dials, %d before)", n, stale)
	}
}

// keptKeystore is the kept view's keystore, as keptValue gives it, and
// its bytes.
func keptKeystore(t *testing.T, ctx context.Context) (string, []byte) {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(`+keptValue+`).then((s) => JSON.parse(s).keystore)`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("reading the app's storage: %v", err)
	}
	b := make([]byte, 0, len(v))
	for _, r := range v {
		b = append(b, byte(r)) // Latin-1: one character a byte
	}
	return v, b
}

// keptNodes opens the kept keystore with pass, as the app does, and
// returns it (as keptKeystore does) with the node addresses inside it.
func keptNodes(t *testing.T, ctx context.Context, pass string) (string, []string) {
	t.Helper()
	v, b := keptKeystore(t, ctx)
	ks, err := directory.DecryptKeystore(b, pass)
	if err != nil {
		t.Fatalf("opening the kept keystore: %v", err)
	}
	return v, ks.Nodes
}

// connsOver counts the connections home's daemon holds over WebRTC and
// over WebTransport, except to the peers except (peer IDs: other
// daemons, which may dial one another over WebRTC too).
func connsOver(t *testing.T, home string, except ...string) (rtcConns, wtConns int) {
	t.Helper()
	var peers []api.Peer
	if err := json.Unmarshal([]byte(mustRun(t, home, "--json", "peers")), &peers); err != nil {
		t.Fatal(err)
	}
	t.Logf("the node's peers: %+v", peers)
	for _, p := range peers {
		if slices.Contains(except, p.ID) {
			continue
		}
		for _, a := range p.Addrs {
			switch {
			case strings.Contains(a, "/webrtc-direct"):
				rtcConns++
			case strings.Contains(a, "/webtransport"):
				wtConns++
			}
		}
	}
	return rtcConns, wtConns
}

// codeAddrList is the addresses an invite code carries, one string.
func codeAddrList(t *testing.T, code string) string {
	t.Helper()
	c, err := directory.ParseInviteCode(code)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, b := range c.Addrs {
		a, err := multiaddr.NewMultiaddrBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a.String())
	}
	return strings.Join(out, " ")
}

// withoutBrowserAddrs is code with its WebRTC and WebTransport addresses
// taken out: the same token, so the node redeems it, but nothing a browser
// can dial.
func withoutBrowserAddrs(t *testing.T, code string) string {
	t.Helper()
	c, err := directory.ParseInviteCode(code)
	if err != nil {
		t.Fatal(err)
	}
	var keep [][]byte
	for _, b := range c.Addrs {
		a, err := multiaddr.NewMultiaddrBytes(b)
		if err != nil {
			t.Fatal(err)
		}
		if s := a.String(); !strings.Contains(s, "/webrtc-direct") && !strings.Contains(s, "/webtransport") {
			keep = append(keep, b)
		}
	}
	c.Addrs = keep
	return c.String()
}
