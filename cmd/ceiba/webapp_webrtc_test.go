package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/multiformats/go-multiaddr"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/internal/wasmtest"
	"github.com/ceiba-network/ceiba/node/api"
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
