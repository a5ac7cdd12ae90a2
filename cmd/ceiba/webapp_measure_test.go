package main

import (
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/fxamacker/cbor/v2"

	"github.com/ceiba-network/ceiba/directory"
	"github.com/ceiba-network/ceiba/internal/wasmtest"
	"github.com/ceiba-network/ceiba/node/daemon"
)

// Issue 16's numbers for the phone (docs/PERFORMANCE.md, "The phone's web
// app"), measured in headless Chromium against real daemons, only when
// asked (it takes minutes):
//
//	CEIBA_WEBAPP_MEASURE=1 go test -run TestWebappMeasure -v -timeout 30m ./cmd/ceiba/
//
// 1. From pressing "Join" with a reader code to all of a directory of
// 1,000 entries being searchable in the page (the invite, admission and
// sync over WebTransport, every record opened and checked by the core).
// 2. Search latency at 10,000 entries with Chromium's CPU throttled 4×
// (a mid-range phone, as Chrome's own tools approximate one): p50 and p99
// of the page's search (the core's search and reading its answer), over
// typical, multi-word, typo'd and no-match queries. Target: p99 < 50 ms.
//
// The entries are signed with the daemons' own keys (read from their
// keystores) and imported with `ceiba import`, so the organization's node
// holds and serves them exactly as if published one by one.
func TestWebappMeasure(t *testing.T) {
	if os.Getenv("CEIBA_WEBAPP_MEASURE") == "" {
		t.Skip("a measurement: set CEIBA_WEBAPP_MEASURE=1 to run it")
	}
	nodeJS := wasmtest.Node(t, "../../webapp/node_modules/esbuild/package.json")
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("needs Chromium at %s: %v", chromium, err)
	}
	steward, org, _, inv := orgWithReaderInvite(t)
	wt := browserAddr(t, daemonStatus(t, org).Addrs, "webtransport")

	// 999 more entries by the organization: 1,000 with the template's.
	orgKS := homeKeystore(t, org)
	stewardKS := homeKeystore(t, steward)
	st := daemonStatus(t, org)
	raw, err := hex.DecodeString(st.Network)
	var net directory.NetworkID
	if err != nil || len(raw) != len(net) {
		t.Fatalf("network %q", st.Network)
	}
	copy(net[:], raw)
	_, key, ok := orgKS.Keys.Current()
	if !ok {
		t.Fatal("the organization holds no read key")
	}
	var recs []*directory.Record
	for i := range 999 {
		recs = append(recs, measureEntry(t, net, orgKS.Identity, i))
	}
	importRecords(t, org, net, key, recs)
	if n := daemonStatus(t, org).Counts.Entries; n != 1000 {
		t.Fatalf("the organization's node holds %d entries, want 1,000", n)
	}

	site := buildWebapp(t, nodeJS)
	srv := httptest.NewServer(http.FileServer(http.Dir(site)))
	t.Cleanup(srv.Close)
	ctx := startChromium(t)
	tctx, cancel := chromedp.NewContext(ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	tctx, cancel = context.WithTimeout(tctx, 25*time.Minute)
	t.Cleanup(cancel)
	do(t, tctx, chromedp.EmulateViewport(412, 915, chromedp.EmulateMobile), chromedp.Navigate(srv.URL+"/"),
		chromedp.WaitVisible(chromedp.CSS("#go")),
		chromedp.SetValue(chromedp.CSS("#code"), inv.Code),
		chromedp.SetValue(chromedp.CSS("#pass"), "una frase de paso larga"),
		chromedp.SetValue(chromedp.CSS("#node"), wt))
	start := time.Now()
	do(t, tctx, chromedp.Click(chromedp.CSS("#go")))
	waitEntries(t, tctx, 1000, 5*time.Minute)
	joined := time.Since(start)
	last := fmt.Sprintf(`{"text":"%s"}`, measureName(998))
	if n, err := chromedp.Run(tctx, chromedp.Evaluate[int](`JSON.parse(ceibaCore.search('`+last+`').results).length`)); err != nil || n == 0 {
		t.Fatalf("the last entry is not found: %d, %v", n, err)
	}

	// 9,000 more, by nine more organizations the steward admits: the
	// phone's next sync brings them.
	charter := daemonStatus(t, steward).Counts.Charter
	recs = nil
	for m := range 9 {
		id, err := directory.NewIdentity()
		if err != nil {
			t.Fatal(err)
		}
		ms := &directory.Membership{Charter: charter, Org: id.Public(), KEM: id.KEMPublic(), KEMSig: id.KEMBinding(),
			Name: fmt.Sprintf("Organización %d", m+2), Issued: time.Now().Add(-time.Minute).Unix()}
		r, err := directory.NewRecord(net, ms, stewardKS.Identity)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
		for i := range 1000 {
			recs = append(recs, measureEntry(t, net, id, 1000+m*1000+i))
		}
	}
	importRecords(t, org, net, key, recs)
	start10k := time.Now()
	waitEntries(t, tctx, 10000, 15*time.Minute)
	synced10k := time.Since(start10k)

	// The same searches unthrottled first, in the same page: the ratio
	// says what the throttling costs, whatever else loads the machine.
	free := searchLatencies(t, tctx)
	if _, err := chromedp.Call(tctx, emulation.SetCPUThrottlingRate, emulation.SetCPUThrottlingRateParams{Rate: 4}); err != nil {
		t.Fatal(err)
	}
	slow := searchLatencies(t, tctx)
	load, _ := os.ReadFile("/proc/loadavg")
	t.Logf("MEASURE join→1,000 entries searchable: %s", joined.Round(100*time.Millisecond))
	t.Logf("MEASURE 9,000 more entries synced by the open app: %s (up to one %s resync interval of waiting included)", synced10k.Round(100*time.Millisecond), "15 s")
	for _, m := range []struct {
		name string
		lat  latencies
	}{{"unthrottled", free}, {"4× CPU throttling", slow}} {
		t.Logf("MEASURE search at 10,000 entries, %s, %d searches: p50 %.1f ms, p99 %.1f ms, max %.1f ms; medians by query %v",
			m.name, len(m.lat.All), m.lat.p(0.5), m.lat.p(0.99), m.lat.All[len(m.lat.All)-1], m.lat.ByQuery)
	}
	t.Logf("MEASURE machine: %d CPUs, load average %s", runtime.NumCPU(), load)
	if slow.p(0.99) >= 50 {
		t.Logf("MEASURE the p99 target (< 50 ms) is missed")
	}
}

type latencies struct {
	All     []float64          // sorted, ms
	ByQuery map[string]float64 // median per query, ms
}

func (l latencies) p(q float64) float64 { return l.All[int(q*float64(len(l.All)-1))] }

// searchLatencies times the page's search (the core's search and reading
// its answer) over typical, multi-word, typo'd and no-match queries, 20
// rounds after one round of warm-up.
func searchLatencies(t *testing.T, ctx context.Context) latencies {
	t.Helper()
	out, err := chromedp.Run(ctx, chromedp.Evaluate[latencies](`(() => {
		const queries = ['asesoria', 'albergue madrid', 'atención psicológica', 'salud bogota', 'alberge',
			'seguridad digital', 'documentacion tramites', 'comedor', 'empleo formacion quito', 'xyzzy nada'];
		const all = [], by = {};
		for (let round = -1; round < 20; round++) {
			for (const q of queries) {
				const t0 = performance.now();
				JSON.parse(ceibaCore.search(JSON.stringify({ text: q })).results);
				const ms = performance.now() - t0;
				if (round < 0) continue;
				all.push(ms);
				(by[q] ??= []).push(ms);
			}
		}
		const med = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
		return { All: all.sort((a, b) => a - b), ByQuery: Object.fromEntries(Object.entries(by).map(([q, xs]) => [q, med(xs)])) };
	})()`))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// homeKeystore opens a test home's keystore with the tests' passphrase.
func homeKeystore(t *testing.T, home string) *directory.Keystore {
	t.Helper()
	ks, err := directory.LoadKeystore(daemon.Home{Dir: home}.KeysPath(), "correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

var measureKinds = []struct{ name, category string }{
	{"Asesoría jurídica", "legal"}, {"Albergue temporal", "shelter"}, {"Atención psicológica", "psychosocial"},
	{"Clínica de salud", "health"}, {"Comedor solidario", "food"}, {"Seguridad digital", "digital-security"},
	{"Acompañamiento migratorio", "migration"}, {"Documentación y trámites", "documentation"},
	{"Empleo y formación", "work"}, {"Apoyo financiero", "financial"},
}

var measureCities = []struct{ city, country string }{
	{"Ciudad de México", "MX"}, {"Madrid", "ES"}, {"Bogotá", "CO"}, {"San José", "CR"},
	{"Berlín", "DE"}, {"Quito", "EC"}, {"Lima", "PE"}, {"Guatemala", "GT"},
}

func measureName(i int) string {
	k, c := measureKinds[i%len(measureKinds)], measureCities[(i/len(measureKinds))%len(measureCities)]
	return fmt.Sprintf("%s %s %05d", k.name, c.city, i)
}

// measureEntry is the i-th entry of the measurement, signed by org.
func measureEntry(t *testing.T, net directory.NetworkID, org *directory.Identity, i int) *directory.Record {
	t.Helper()
	k, c := measureKinds[i%len(measureKinds)], measureCities[(i/len(measureKinds))%len(measureCities)]
	now := time.Now().Add(-time.Minute)
	e := &directory.Entry{
		ID: fmt.Sprintf("servicio-%05d", i), Seq: 1, Issued: now.Unix(), Expires: now.Add(90 * 24 * time.Hour).Unix(),
		Service: &directory.Service{
			Name:        measureName(i),
			Description: fmt.Sprintf("%s para personas defensoras en el exilio en %s; atención en español.", k.name, c.city),
			Status:      "active",
			Categories:  []string{k.category},
			Languages:   []string{"es"},
			Areas:       []directory.Area{{City: c.city, Country: c.country}},
			Contacts:    []directory.Contact{{Kind: "signal", Value: fmt.Sprintf("+52 55 %04d %04d", i/10000, i%10000), Preferred: true}},
		},
	}
	r, err := directory.NewRecord(net, e, org)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// importRecords seals recs under key into an export bundle and imports it
// with `ceiba import` on home's daemon.
func importRecords(t *testing.T, home string, net directory.NetworkID, key directory.ReadKey, recs []*directory.Record) {
	t.Helper()
	b := struct {
		Network directory.NetworkID `cbor:"1,keyasint"`
		Created int64               `cbor:"2,keyasint"`
		Records [][]byte            `cbor:"3,keyasint"`
	}{Network: net, Created: time.Now().Unix()}
	for _, r := range recs {
		b.Records = append(b.Records, directory.Seal(r, key))
	}
	enc, _ := cbor.CoreDetEncOptions().EncMode()
	data, err := enc.Marshal(&b)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "bundle.ceiba")
	if err := os.WriteFile(f, data, 0o600); err != nil {
		t.Fatal(err)
	}
	mustRun(t, home, "import", f)
}

// waitEntries waits until the page's view holds at least n entries.
func waitEntries(t *testing.T, ctx context.Context, n int, limit time.Duration) {
	t.Helper()
	var got int
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		v, err := chromedp.Run(ctx, chromedp.Evaluate[int](`globalThis.ceibaCore?.status?.().status ? JSON.parse(ceibaCore.status().status).entries : 0`))
		if err == nil {
			got = v
			if got >= n {
				return
			}
		}
	}
	body, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	t.Fatalf("the page holds %d entries after %s, want %d; page:\n%s", got, limit, n, body)
}
