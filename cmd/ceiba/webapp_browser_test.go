package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	webtransport "github.com/libp2p/go-libp2p/p2p/transport/webtransport"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/internal/browsertest"
	"github.com/ceiba-network/ceiba/internal/wasmtest"
)

const chromium = browsertest.Chromium

// Issue 16: the reader's web app in a real browser. The app is built as
// `make webapp` builds it (the core compiled to WebAssembly, the
// JavaScript bundled by esbuild), served from a loopback HTTP server, and
// driven in headless Chromium sized like a phone. A person pastes a reader
// invite code and the organization's node's WebTransport address: the key
// is made in the core, the code is redeemed over WebTransport (the node's
// self-signed certificate, pinned by its hash), the phone is admitted and
// syncs, and a search for "asesoria" finds "Asesoría jurídica". Before
// that, a malformed code and a node that answers garbage get their own
// clear messages (Spanish, the browser's language), and afterwards the
// spent code gets the node's refusal (English, picked in the page).
func TestWebappInBrowser(t *testing.T) {
	nodeJS := wasmtest.Node(t, "../../webapp/node_modules/esbuild/package.json")
	needChromium(t)
	steward, org, stopOrg, inv := orgWithReaderInvite(t)
	wt := browserAddr(t, daemonStatus(t, org).Addrs, "webtransport")

	site := buildWebapp(t, nodeJS)
	// down makes the server drop every connection, as a phone with no
	// network sees it.
	var down atomic.Bool
	files := http.FileServer(http.Dir(site))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			if conn, _, err := w.(http.Hijacker).Hijack(); err == nil {
				conn.Close()
			}
			return
		}
		files.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	ctx := startChromium(t)
	var orgGone atomic.Bool
	// Offline, the app tries the stopped node, as it should.
	triesStoppedNode := func(text string) bool {
		return orgGone.Load() && strings.Contains(text, "/.well-known/libp2p-webtransport")
	}
	var tabs []func() []string
	tab := func(query, acceptLanguage string) context.Context {
		tctx, problems := appTab(t, ctx, srv.URL+"/"+query, acceptLanguage, triesStoppedNode)
		tabs = append(tabs, problems)
		return tctx
	}
	join := func(tctx context.Context, code, node string) {
		t.Helper()
		do(t, tctx,
			chromedp.SetValue(chromedp.CSS("#code"), code),
			chromedp.SetValue(chromedp.CSS("#pass"), "una frase de paso larga"),
			chromedp.SetValue(chromedp.CSS("#node"), node),
			chromedp.Click(chromedp.CSS("#go")),
		)
	}

	// Spanish from the browser's language; a malformed code is named as such.
	// The tab syncs on its own once a day only (?resync=), so what
	// arrives while it is open below came by gossip.
	es := tab(oncePerDay, "es-MX,es;q=0.9")
	screenshot(t, es, "webapp-join-es.png")
	join(es, inv.Code[:len(inv.Code)-5], wt)
	waitText(t, es, "#errorText", "El código de invitación no es válido")
	if label := waitText(t, es, `label[for="code"]`, ""); label != "Código de invitación" {
		t.Errorf("in a Spanish browser the code's label is %q", label)
	}
	screenshot(t, es, "webapp-error-es.png")

	// A node that answers the invite with garbage: named, nothing joined.
	bogusCode, bogusAddr := garbageNode(t)
	join(es, bogusCode, bogusAddr)
	waitText(t, es, "#errorText", "no es una respuesta válida de Ceiba")
	if n := keptViews(t, es); n != 0 {
		t.Errorf("after two failed joins the phone keeps %d views, want none", n)
	}

	// The real node: redeem, admit, sync, search.
	join(es, inv.Code, wt)
	do(t, es, chromedp.WaitVisible(chromedp.CSS("#q")))
	search(t, es, "asesoria")
	if found := waitText(t, es, "#results li h2", "Asesoría"); found != "Asesoría jurídica para personas defensoras" {
		t.Errorf("a search for \"asesoria\" found %q, want the organization's entry", found)
	}

	// English, picked in the page; the spent code is refused by the node.
	en := tab("?lang=en", "es-MX")
	screenshot(t, en, "webapp-join-en.png")
	join(en, inv.Code, wt)
	waitText(t, en, "#errorText", "This code was used already")
	if n := keptViews(t, en); n != 0 {
		t.Errorf("after a refused code the phone keeps %d views, want none", n)
	}
	screenshot(t, en, "webapp-refused-en.png")

	// The view is kept, and the node's address with it, inside the
	// encrypted keystore: nothing the phone stores names the node.
	waitText(t, es, "#saved", "Guardado cifrado")
	if n := keptViews(t, es); n != 1 {
		t.Fatalf("after joining the phone keeps %d views, want 1", n)
	}
	orgPeer := wt[strings.LastIndex(wt, "/")+1:]
	if clear := keptInClear(t, es, orgPeer, "127.0.0.1", "webtransport", "webrtc"); clear != "" {
		t.Errorf("the phone's storage names the node in clear: %s", clear)
	}

	// New entries arrive while the app is open, by gossip: the
	// organization publishes after the phone joined, and the same page
	// (no reload) finds it within seconds, though its periodic sync runs
	// once a day; it counts the record as gossiped, and no sync brought
	// anything meanwhile.
	do(t, es, chromedp.Evaluate[chromedp.Void](`window.sameLoad = true`))
	search(t, es, "albergue")
	arrivesByGossip(t, es, func() { publishEntry(t, org, "albergue-temporal", "Albergue temporal para familias") },
		"Albergue temporal para familias")
	if same, err := chromedp.Run(es, chromedp.Evaluate[bool](`window.sameLoad === true`)); err != nil || !same {
		t.Errorf("the new entry appeared only after a reload (%v)", err)
	}
	inBothLanguages(t, es, "#net", "Al día", "Up to date", "webapp-results")

	// After a reload the app syncs again with the kept address: an entry
	// published while the app was closed is there once the passphrase
	// opens it. Before that, a code for another network is refused by
	// name and changes nothing kept.
	before := keptNetwork(t, es)
	do(t, es, chromedp.Navigate("about:blank"))
	publishEntry(t, org, "clinica-comunitaria", "Clínica comunitaria de salud")
	otherHome, _, _, _ := ownNetwork(t)
	otherInv := readerInvite(t, otherHome)
	otherWT := browserAddr(t, daemonStatus(t, otherHome).Addrs, "webtransport")
	do(t, es, chromedp.Navigate(srv.URL+"/"+oncePerDay), chromedp.WaitVisible(chromedp.CSS("#unlockPass")), chromedp.Click(chromedp.CSS("#newCode")))
	join(es, otherInv.Code, otherWT)
	waitText(t, es, "#errorText", "Este código es de otra red")
	if n, after := keptViews(t, es), keptNetwork(t, es); n != 1 || after != before {
		t.Errorf("after another network's code the phone keeps %d views of %s, want the one of %s", n, after, before)
	}
	do(t, es, chromedp.SetValue(chromedp.CSS("#unlockPass"), "una frase de paso larga"), chromedp.Click(chromedp.CSS("#open")),
		chromedp.WaitVisible(chromedp.CSS("#q")))
	search(t, es, "clinica")
	waitText(t, es, "#results li h2", "Clínica comunitaria de salud")
	waitText(t, es, "#net", "Al día")

	// A rotation received while connected gives the phone, a reader
	// entitled to it, the new read key: the steward rotates, and the page
	// holds two keys without a reload. The offline step below opens what
	// was kept after it, sealed under the new key, so the keystore was kept
	// again with it. Gossip brought the rotation, though the page syncs
	// on its own once a day: its records, or, when the node had opened
	// the new key before it could forward them (it forwards no page
	// sealed under the older key after that), the node's move to the new
	// key's topics, which makes the page sync at once. Then the page is on
	// the new key's topics: an entry the organization publishes under the
	// new key, on those topics only, reaches it by gossip.
	gossipedBefore, syncedBefore := recordCounts(t, es)
	waitingBefore := waitingCount(t, es)
	rotated := time.Now()
	mustRun(t, steward, "rotate")
	waitUntil(t, 30*time.Second, "the phone to open the rotation's key", func() bool {
		keys, err := chromedp.Run(es, chromedp.Evaluate[int](`JSON.parse(ceibaCore.status().status).keys`))
		return err == nil && keys >= 2
	})
	g, synced := recordCounts(t, es)
	waiting := waitingCount(t, es)
	t.Logf("the phone opened the rotation's key %v after the steward's rotate began: %d records applied from gossip, %d kept waiting, %d synced",
		time.Since(rotated).Round(time.Millisecond), g-gossipedBefore, waiting-waitingBefore, synced-syncedBefore)
	waitUntil(t, time.Minute, "the organization's node to seal under the new key", func() bool {
		return daemonStatus(t, org).KeyEpoch >= 2
	})
	search(t, es, "refugio")
	arrivesByGossip(t, es, func() { publishEntry(t, org, "casa-refugio", "Casa refugio para periodistas") },
		"Casa refugio para periodistas")

	// Revocation takes effect as on a node: the steward revokes the
	// phone's reader key, the organization's node cuts it and refuses it
	// from then on, and the app says so; an entry published afterwards
	// never reaches it.
	fp, err := chromedp.Run(es, chromedp.Evaluate[string](`JSON.parse(ceibaCore.status().status).fingerprint`))
	if err != nil || fp == "" {
		t.Fatalf("the app's reader key: %q, %v", fp, err)
	}
	mustRun(t, steward, "steward", "propose", "revoke", fp, "--reason", "teléfono incautado")
	publishEntry(t, org, "comedor-solidario", "Comedor solidario")
	waitText(t, es, "#errorText", "fue revocada")
	search(t, es, "comedor")
	if got := waitText(t, es, "#results li", ""); got != "No se encontró nada." {
		t.Errorf("after its revocation the phone finds %q for \"comedor\"", got)
	}
	if hidden, err := chromedp.Run(es, chromedp.Evaluate[bool](`document.getElementById('net').hidden`)); err != nil || !hidden {
		t.Errorf("a revoked app still shows that it is up to date with the node (%v)", err)
	}
	inBothLanguages(t, es, "#errorText", "fue revocada", "This reader key was revoked", "webapp-revoked")
	// The revocation itself reached the phone by gossip, before its node
	// cut it, and was kept with the view.
	if kept, err := chromedp.Run(es, chromedp.Evaluate[bool](`JSON.parse(ceibaCore.status().status).revoked`)); err != nil || !kept {
		t.Errorf("the phone's view does not hold its key's revocation (%v)", err)
	}

	// Offline: the app's files were kept too. With the node and the web
	// server gone, a reload asks for the passphrase; a wrong one opens
	// nothing, the right one opens the directory, the app says it is
	// offline, and the search finds the entries again.
	if ok, err := chromedp.Run(es, chromedp.Evaluate[bool](`navigator.serviceWorker.ready.then(() => caches.keys()).then((k) => k.some((n) => n.startsWith('ceiba-shell-')))`, chromedp.EvalAwaitPromise)); err != nil || !ok {
		t.Fatalf("the service worker kept no app shell: %v, %v", ok, err)
	}
	orgGone.Store(true)
	stopOrg()
	down.Store(true)
	do(t, es, chromedp.Navigate(srv.URL+"/"), chromedp.WaitVisible(chromedp.CSS("#unlockPass")))
	do(t, es, chromedp.SetValue(chromedp.CSS("#unlockPass"), "otra frase de paso"), chromedp.Click(chromedp.CSS("#open")))
	waitText(t, es, "#errorText", "La frase de paso no es correcta")
	do(t, es, chromedp.SetValue(chromedp.CSS("#unlockPass"), "una frase de paso larga"), chromedp.Click(chromedp.CSS("#open")),
		chromedp.WaitVisible(chromedp.CSS("#q")))
	search(t, es, "asesoria")
	if found := waitText(t, es, "#results li h2", "Asesoría"); found != "Asesoría jurídica para personas defensoras" {
		t.Errorf("offline, a search for \"asesoria\" found %q", found)
	}
	// The kept view holds the revocation: the app says so again, and
	// does not claim to be up to date or offline (it asks no node).
	waitText(t, es, "#errorText", "fue revocada")
	if hidden, err := chromedp.Run(es, chromedp.Evaluate[bool](`document.getElementById('net').hidden`)); err != nil || !hidden {
		t.Errorf("after a reload, a revoked app shows its network state (%v)", err)
	}

	// The panic button leaves nothing: no database, no cache, no worker.
	do(t, es, chromedp.Click(chromedp.CSS("#panic")))
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if loc, err := chromedp.Run(es, chromedp.Location()); err == nil && loc == "about:blank" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the panic button did not leave the page")
		}
	}
	down.Store(false)
	do(t, es, chromedp.Navigate(srv.URL+"/icon.svg"))
	left, err := chromedp.Run(es, chromedp.Evaluate[string](`(async () => {
		const dbs = (await indexedDB.databases()).map((d) => d.name);
		const kept = await caches.keys();
		const workers = await navigator.serviceWorker.getRegistrations();
		return JSON.stringify({dbs, kept, workers: workers.length});
	})()`, chromedp.EvalAwaitPromise))
	if err != nil || left != `{"dbs":[],"kept":[],"workers":0}` {
		t.Errorf("after the panic button the origin still holds %s (%v)", left, err)
	}
	for _, problems := range tabs {
		for _, p := range problems() {
			t.Errorf("the browser reported %s", p)
		}
	}
}

// oncePerDay is the query that makes the app sync on its own once a day:
// what arrives meanwhile came by gossip.
const oncePerDay = "?resync=86400"

// recordCounts are the records the page applied from gossip and pulled by
// sync since it loaded (the data attributes app.js keeps).
func recordCounts(t *testing.T, ctx context.Context) (gossiped, synced int) {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`[+document.documentElement.dataset.gossipRecords, +document.documentElement.dataset.syncedRecords]`))
	if err != nil || len(v) != 2 {
		t.Fatalf("reading the page's record counts: %v %v", v, err)
	}
	return v[0], v[1]
}

// waitingCount is the records from gossip the page kept for their key or
// governance since it loaded.
func waitingCount(t *testing.T, ctx context.Context) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`+document.documentElement.dataset.waitingRecords`))
	if err != nil {
		t.Fatalf("reading the page's record counts: %v", err)
	}
	return n
}

// arrivesByGossip runs publish and waits until the page, whose search box
// holds a query that finds the published entry, shows want: within 10
// seconds, with at least one record more counted as gossiped and none
// more pulled by sync.
func arrivesByGossip(t *testing.T, ctx context.Context, publish func(), want string) {
	t.Helper()
	gossiped, synced := recordCounts(t, ctx)
	publish()
	start := time.Now()
	var got string
	for time.Since(start) < 10*time.Second {
		got, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#results li h2')?.textContent ?? ''`))
		if got == want {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	g, s := recordCounts(t, ctx)
	if got != want {
		t.Fatalf("%q did not arrive within 10 s of publishing (the page shows %q; %d records gossiped, %d synced since)", want, got, g-gossiped, s-synced)
	}
	t.Logf("%q arrived %v after publishing returned", want, time.Since(start).Round(time.Millisecond))
	if g <= gossiped || s != synced {
		t.Errorf("%q arrived with %d records gossiped and %d synced since it was published, want at least one and none", want, g-gossiped, s-synced)
	}
}

func do(t *testing.T, ctx context.Context, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, steps...); err != nil {
		body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
		t.Fatalf("browser: %v\npage:\n%s", err, body)
	}
}

// search types text into the search box, replacing what was there.
func search(t *testing.T, ctx context.Context, text string) {
	t.Helper()
	do(t, ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById('q').value = ''`), chromedp.SendKeys(chromedp.CSS("#q"), text))
}

// inBothLanguages waits for the Spanish text in sel, switches the page to
// English and waits for the English one, then back to Spanish, with a
// screenshot in each (name-es.png, name-en.png).
func inBothLanguages(t *testing.T, ctx context.Context, sel, es, en, name string) {
	t.Helper()
	waitText(t, ctx, sel, es)
	screenshot(t, ctx, name+"-es.png")
	setLanguage(t, ctx, "en")
	waitText(t, ctx, sel, en)
	screenshot(t, ctx, name+"-en.png")
	setLanguage(t, ctx, "es")
}

// setLanguage switches the page's language with its picker.
func setLanguage(t *testing.T, ctx context.Context, lang string) {
	t.Helper()
	do(t, ctx, chromedp.SetValue(chromedp.CSS("#lang"), lang),
		chromedp.Evaluate[chromedp.Void](`document.getElementById('lang').dispatchEvent(new Event('change'))`))
}

// keptValue is the app's kept view in the tab's IndexedDB, as JSON with
// its byte arrays as Latin-1 strings (what a copy of the storage shows).
const keptValue = `new Promise((resolve, reject) => {
	const r = indexedDB.open('ceiba');
	r.onerror = () => reject(r.error);
	r.onsuccess = () => {
		const db = r.result;
		const g = db.transaction('view').objectStore('view').get('current');
		g.onsuccess = () => {
			db.close();
			const latin1 = (b) => Array.from(b, (c) => String.fromCharCode(c)).join('');
			const v = g.result ?? {};
			resolve(JSON.stringify({network: v.network, keystore: latin1(v.keystore ?? []), records: (v.records ?? []).map(latin1)}));
		};
		g.onerror = () => reject(g.error);
	};
})`

// keptInClear returns the first of words found in the kept view's bytes,
// or "".
func keptInClear(t *testing.T, ctx context.Context, words ...string) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](keptValue, chromedp.EvalAwaitPromise))
	if err != nil || !strings.Contains(v, `"keystore":"`) {
		t.Fatalf("reading the app's storage: %v (%.100s)", err, v)
	}
	for _, w := range words {
		if strings.Contains(v, w) {
			return w
		}
	}
	return ""
}

// keptNetwork is the network of the kept view.
func keptNetwork(t *testing.T, ctx context.Context) string {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(`+keptValue+`).then((s) => JSON.parse(s).network ?? '')`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("reading the app's storage: %v", err)
	}
	return v
}

// keptViews counts the views the app keeps in the tab's IndexedDB.
func keptViews(t *testing.T, ctx context.Context) int {
	t.Helper()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`new Promise((resolve, reject) => {
		const r = indexedDB.open('ceiba');
		r.onerror = () => reject(r.error);
		r.onsuccess = () => {
			const db = r.result;
			if (!db.objectStoreNames.contains('view')) { db.close(); resolve(0); return; }
			const c = db.transaction('view').objectStore('view').count();
			c.onsuccess = () => { db.close(); resolve(c.result); };
			c.onerror = () => reject(c.error);
		};
	})`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("reading the app's storage: %v", err)
	}
	return n
}

// waitText waits until the element sel is visible with text containing
// want, and returns its text.
func waitText(t *testing.T, ctx context.Context, sel, want string) string {
	t.Helper()
	var got string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		qctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		s, err := chromedp.Run(qctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
		cancel()
		if err == nil {
			got = s
			if strings.Contains(got, want) {
				return got
			}
		}
	}
	body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	t.Fatalf("%s shows %q, want it to contain %q; page:\n%s", sel, got, want, body)
	return ""
}

// browserAddr is the daemon's loopback address over a browser transport
// ("webtransport" or "webrtc-direct"), with its certificate hashes and
// peer ID: what an organization hands a phone's browser.
func browserAddr(t *testing.T, addrs []string, transport string) string {
	t.Helper()
	for _, a := range addrs {
		if strings.HasPrefix(a, "/ip4/127.0.0.1/") && strings.Contains(a, "/"+transport+"/certhash/") {
			return a
		}
	}
	t.Fatalf("the daemon announces no loopback %s address: %v", transport, addrs)
	return ""
}

// buildWebapp builds the app into a temporary directory, as make webapp
// does into webapp/dist.
func buildWebapp(t *testing.T, nodeJS string) string {
	t.Helper()
	wasm := wasmtest.Build(t, "../../webapp/core/wasm")
	out := filepath.Join(t.TempDir(), "site")
	cmd := exec.Command(nodeJS, "../../webapp/build.mjs", out, wasm, wasmtest.ExecJS(t))
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the web app: %v\n%s", err, b)
	}
	return out
}

// startChromium starts a headless Chromium for the test. QUIC stays on:
// WebTransport runs over it.
func startChromium(t *testing.T) context.Context {
	t.Helper()
	alloc, cancel := chromedp.NewExecAllocator(context.Background(), browsertest.Options(t.TempDir())...)
	t.Cleanup(cancel)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromium, err)
	}
	return ctx
}

// garbageNode is a libp2p peer on loopback WebTransport that answers
// every invite request with bytes that are not an invite answer. It
// returns a code naming it and its address.
func garbageNode(t *testing.T) (code, addr string) {
	t.Helper()
	h, err := libp2p.New(libp2p.NoTransports, libp2p.Transport(webtransport.New),
		libp2p.ListenAddrStrings("/ip4/127.0.0.1/udp/0/quic-v1/webtransport"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	h.SetStreamHandler("/ceiba/invite/2.0.0", func(s network.Stream) {
		defer s.Close()
		junk := bytes.Repeat([]byte{0x00, 0x00, 0x00, 0x20, 0xff}, 8)
		s.Write(junk)
	})
	tok := make([]byte, directory.InviteTokenSize)
	rand.Read(tok)
	c := &directory.InviteCode{Peer: []byte(h.ID()), Addrs: [][]byte{h.Addrs()[0].Bytes()}, Token: tok}
	return c.String(), h.Addrs()[0].String() + "/p2p/" + h.ID().String()
}

// screenshot writes a phone-sized PNG of the tab to docs/screenshots, only
// when CEIBA_WRITE_SCREENSHOTS is set (as node/webui's tests do), so the
// test leaves the tree as it found it.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	if os.Getenv("CEIBA_WRITE_SCREENSHOTS") == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join("..", "..", "docs", "screenshots", name), png, 0o644); err != nil {
		t.Fatal(err)
	}
}
