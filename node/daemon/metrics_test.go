package daemon

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ceiba-network/ceiba/node"
	"github.com/ceiba-network/ceiba/node/api"
	"github.com/ceiba-network/ceiba/transport"
)

func get(t *testing.T, d *Daemon, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + d.APIAddr() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// /healthz answers without a token and says why the node is degraded
// without naming the network or peers; /metrics exists only when enabled.
func TestHealthzAndMetrics(t *testing.T) {
	d := startDaemonWith(t, "ops", func(c *Config) { c.API.Metrics = true })
	code, body := get(t, d, "/healthz")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not joined") {
		t.Fatalf("before joining: %d %s", code, body)
	}
	if _, err := d.CreateNetwork(context.Background(), api.NetworkRequest{Name: "Red Secreta", Threshold: 1}); err != nil {
		t.Fatal(err)
	}
	// A steward's node publishes its heartbeat as it starts: without one
	// every node, this one included, would show its copy as stale.
	for deadline := time.Now().Add(10 * time.Second); len(d.Node().State().Heartbeats()) == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the steward's node published no heartbeat")
		}
	}
	if s := d.Status(); s.HeartbeatStale || s.LastHeartbeat.IsZero() || !s.HeartbeatExpires.After(time.Now().Add(2*time.Hour)) {
		t.Fatalf("status after the steward's heartbeat: stale %v, last %s, expires %s", s.HeartbeatStale, s.LastHeartbeat, s.HeartbeatExpires)
	}
	code, body = get(t, d, "/healthz")
	var h Health
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("healthz body %q: %v", body, err)
	}
	if code != http.StatusServiceUnavailable || h.Status != "degraded" || !strings.Contains(body, "no connected peers") {
		t.Fatalf("a lone node: %d %s", code, body)
	}
	if strings.Contains(body, "heartbeat") {
		t.Fatalf("a steward's node holding its own heartbeat: %s", body)
	}
	for _, secret := range []string{"Red Secreta", d.Node().Host().ID().String(), d.Status().Network} {
		if strings.Contains(body, secret) {
			t.Fatalf("healthz reveals %q: %s", secret, body)
		}
	}
	// The five records of the network's creation (the genesis, epoch 1
	// and its two pages: one steward's package padded to 64) and the
	// steward's heartbeat were accepted before the first scrape, and are
	// counted all the same. The counters follow the node's events on a
	// goroutine of their own, so the last event may be counted a moment
	// after the state shows its record: scrape until it is (or 10 s).
	accepted := `ceiba_records_accepted_total{via="local"} 5`
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		code, body = get(t, d, "/metrics")
		if code != http.StatusOK {
			t.Fatalf("/metrics: %d %s", code, body)
		}
		if strings.Contains(body, accepted) || time.Now().After(deadline) {
			break
		}
	}
	for _, want := range []string{"ceiba_records 5", accepted, "ceiba_peers 0", `ceiba_reachability{state="unknown"}`, "ceiba_p2p_sent_bytes_total"} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q\n%s", want, body)
		}
	}
	if s := d.Status(); s.Reachability == "" || s.ReachabilityWhy == "" {
		t.Fatalf("status has no reachability: %+v", s)
	}

	off := startDaemonWith(t, "quiet", nil)
	if _, body := get(t, off, "/metrics"); strings.Contains(body, "ceiba_") {
		t.Fatal("/metrics served although [api] metrics is off")
	}
}

// The profile in config.toml reaches the host: a vps node refuses to dial
// loopback unless told otherwise.
func TestProfileReachesTransport(t *testing.T) {
	c := DefaultConfig("vps", "x", 0, 0)
	c.Node.Relays = []string{"/ip4/203.0.113.7/tcp/4001/p2p/12D3KooWGRUVh4BDFUMpXDyHC98SucFsS3Sffm9TnSaMUTYUvRyz"}
	tc := c.transportConfig()
	if tc.Profile != "vps" || len(tc.Relays) != 1 || tc.AllowPrivateDials {
		t.Fatalf("transport config %+v", tc)
	}
	c.Node.PrivateAddrs = true
	if !c.transportConfig().AllowPrivateDials {
		t.Fatal("a single-LAN network's vps node must be allowed to dial LAN addresses")
	}
	if c.syncInterval(0) != 0 || c.syncInterval(time.Second) != time.Second {
		t.Fatal("only lowdata changes the sync interval")
	}
	c.Profile = "lowdata"
	if c.syncInterval(0) != node.LowDataSyncInterval || c.syncInterval(time.Second) != time.Second {
		t.Fatal("lowdata's sync interval, or an explicit override, is not applied")
	}
	c.Node.Reachability = "maybe"
	if err := c.validate(); err == nil {
		t.Fatal("node.reachability \"maybe\" was accepted")
	}
	c.Node.Reachability = "public"
	if err := c.validate(); err != nil || c.transportConfig().ForceReachability != "public" {
		t.Fatalf("node.reachability public: %v", err)
	}
}

// config.toml's traffic settings reach the node: lowdata uses the DHT as a
// client and has rate caps; each can be overridden, and a bad value is
// refused naming the setting.
func TestTrafficSettings(t *testing.T) {
	c := DefaultConfig("lowdata", "x", 0, 0)
	if m := c.dhtConfig().Mode(); m != "client" {
		t.Fatalf("lowdata DHT mode %q, want client", m)
	}
	rates, err := transport.RatesFor(c.transportConfig())
	if err != nil || rates.Recv != transport.LowDataRecvRate || rates.Send != transport.LowDataSendRate {
		t.Fatalf("lowdata caps %+v (%v)", rates, err)
	}
	zero, eight := int64(0), int64(8)
	c.Node.RecvKiB, c.Node.SendKiB, c.Node.DHT = &zero, &eight, "off"
	rates, err = transport.RatesFor(c.transportConfig())
	if err != nil || rates.Recv != 0 || rates.Send != 8<<10 {
		t.Fatalf("recv_kib_per_second = 0 and send_kib_per_second = 8 gave caps %+v (%v)", rates, err)
	}
	if c.dhtConfig().Mode() != "off" || !c.dhtConfig().Disabled {
		t.Fatal("node.dht = \"off\" left the DHT on")
	}
	if c.transportConfig().NoRelayService {
		t.Fatal("without offer_relay the relay is off")
	}
	no := false
	c.Node.OfferRelay = &no
	if !c.transportConfig().NoRelayService {
		t.Fatal("offer_relay = false did not reach the transport")
	}
	laptop := DefaultConfig("laptop", "x", 0, 0)
	if rates, _ := transport.RatesFor(laptop.transportConfig()); rates != (transport.Rates{}) || laptop.dhtConfig().Mode() != "server" {
		t.Fatalf("laptop: caps %+v, DHT %s; want none and server", rates, laptop.dhtConfig().Mode())
	}

	home := Home{Dir: t.TempDir()}
	for _, tc := range []struct{ setting, want string }{
		{`dht = "sometimes"`, `node.dht "sometimes"`},
		{`recv_kib_per_second = -5`, `node.recv_kib_per_second = -5`},
		{`send_kib_per_second = "fast"`, `send_kib_per_second`},
	} {
		body := "profile = \"lowdata\"\nname = \"x\"\n[api]\nlisten = \"127.0.0.1:0\"\n[node]\n" + tc.setting + "\n"
		if err := os.WriteFile(home.ConfigPath(), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := home.LoadConfig()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one naming %s", tc.setting, err, tc.want)
		}
	}
}
