package daemon

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/ceiba-network/ceiba/node"
	"github.com/ceiba-network/ceiba/node/api"
	"github.com/ceiba-network/ceiba/transport"
)

// opsState is the daemon's metrics exporter. The node may start after the
// daemon (when the home joins a network), so the exporter is built when
// the node starts (or, failing that, on the first scrape that finds it),
// and rebuilt if the node changed.
type opsState struct {
	mu      sync.Mutex
	node    *node.Node
	handler http.Handler
}

// opsRoutes adds the operations endpoints: /healthz always, /metrics when
// [api] metrics is on. Neither needs the token: they reveal counts and
// verdicts, no peer, key, network name or entry.
func (d *Daemon) opsRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		h := d.Health()
		code := http.StatusOK
		if h.Status != "ok" {
			code = http.StatusServiceUnavailable
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(h)
	})
	if !d.cfg.API.Metrics {
		return
	}
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		h := d.metricsHandler()
		if h == nil {
			http.Error(w, "# no network joined yet: no metrics\n", http.StatusServiceUnavailable)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (d *Daemon) metricsHandler() http.Handler {
	n := d.Node()
	if n == nil {
		return nil
	}
	return d.exportMetrics(n)
}

// exportMetrics builds the exporter for n unless it exists. startNode calls
// it as the node starts, so the counters count from then: built at the
// first scrape, they would miss every record accepted before it.
func (d *Daemon) exportMetrics(n *node.Node) http.Handler {
	d.ops.mu.Lock()
	defer d.ops.mu.Unlock()
	if d.ops.node != n {
		reg := prometheus.NewRegistry()
		reg.MustRegister(node.NewMetrics(n))
		d.ops.node = n
		d.ops.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	}
	return d.ops.handler
}

// Health is GET /healthz.
type Health struct {
	Status  string   `json:"status"` // ok or degraded
	Reasons []string `json:"reasons,omitempty"`
}

// Health says whether the node works as it should, and if not, why, in
// words that reveal nothing about the network or its members.
func (d *Daemon) Health() Health {
	n := d.Node()
	if n == nil {
		return Health{Status: "degraded", Reasons: []string{"not joined to a network yet"}}
	}
	var why []string
	st := n.Status()
	if st.Peers == 0 {
		why = append(why, "no connected peers")
	}
	if st.Unpersisted > 0 {
		why = append(why, "the store cannot write records (disk full or failing)")
	}
	if r := st.StoreRepair; r != nil {
		why = append(why, fmt.Sprintf("the store was found damaged at start (%s) and rebuilt; check the disk; the damaged copy is at %s", r.Damage, r.MovedTo))
	}
	if syncStale(n.State(), st.FreshAsOf) {
		why = append(why, "no successful sync for longer than the network's stale bound")
	}
	switch hb := n.HeartbeatFreshness(); {
	case hb.Stale:
		why = append(why, "no valid heartbeat from any steward: the stewards' nodes are down, or this node's peers withhold news")
	case hb.Behind:
		why = append(why, "a steward's heartbeat reports records this node still lacks: its peers withhold them")
	}
	if st.KeyEpoch < st.Epoch {
		why = append(why, "this node lacks the current read key")
	}
	if len(st.KeyMismatches) > 0 {
		why = append(why, "a key rotation sealed this node a key other than the one it announced: tell the stewards")
	}
	d.mu.Lock()
	profile := transport.Profile(d.cfg.Profile)
	d.mu.Unlock()
	if r := n.Reachability(); profile == transport.ProfileVPS && r.State == node.ReachUnreachable {
		// Only a server's unreachability is a fault: others rely on it
		// as a relay and bootstrap peer. A laptop behind NAT is normal.
		why = append(why, "this vps node is not reachable from the internet")
	}
	if len(why) > 0 {
		return Health{Status: "degraded", Reasons: why}
	}
	return Health{Status: "ok"}
}

// reachabilityOf fills api.Status's reachability: the verdict, its reason
// code and count, why, and the fix.
func reachabilityOf(n *node.Node, s *api.Status) {
	r := n.Reachability()
	s.Reachability, s.ReachabilityWhy, s.ReachabilityFix = string(r.State), r.Why, r.Fix
	s.ReachabilityReason, s.ReachabilityN = string(r.Reason), r.N
}
