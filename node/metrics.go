package node

// Metrics for operators: a Prometheus collector that reads the node's
// status at scrape time, plus counters and a histogram fed by the node's
// own event stream. Nothing here is registered globally: the daemon
// registers it on its own registry only when [api] metrics is on, so a
// node that does not export metrics spends nothing on them.

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ceiba-network/ceiba/directory"
)

// Metrics collects a node's metrics. Create it with NewMetrics; it follows
// the node's events until the node closes or Close is called.
type Metrics struct {
	n      *Node
	cancel func()
	done   chan struct{}

	rejected    *prometheus.CounterVec
	accepted    *prometheus.CounterVec
	syncs       *prometheus.CounterVec
	propagation *prometheus.HistogramVec
	lagged      prometheus.Counter

	descs struct {
		peers, topicPeers, dhtPeers, records, unpersisted, syncAge, freshAge,
		epoch, keyEpoch, reach, bytesIn, bytesOut, throttled,
		dhtRecords, dhtBytes, dhtRefused, heldBack, gossipDropped *prometheus.Desc
		dhtUnserved, dhtProviders, dhtProvidersRefused *prometheus.Desc
	}
}

// rejectReasons maps the directory's sentinel errors to label values. A
// fixed list keeps the label's cardinality bounded whatever peers send.
var rejectReasons = []struct {
	err    error
	reason string
}{
	{directory.ErrMalformed, "malformed"},
	{directory.ErrNonCanonical, "non_canonical"},
	{directory.ErrTooLarge, "too_large"},
	{directory.ErrUnknownVersion, "unknown_version"},
	{directory.ErrUnknownType, "unknown_type"},
	{directory.ErrWrongNetwork, "wrong_network"},
	{directory.ErrBadSignature, "bad_signature"},
	{directory.ErrNoKey, "no_key"},
	{directory.ErrDecrypt, "decrypt"},
	{directory.ErrInvalid, "invalid"},
	{directory.ErrThreshold, "threshold"},
	{directory.ErrNotSteward, "not_steward"},
	{directory.ErrUnknownCharter, "unknown_charter"},
	{directory.ErrNotMember, "not_member"},
	{directory.ErrRevoked, "revoked"},
	{directory.ErrStale, "stale"},
	{directory.ErrRollback, "rollback"},
	{directory.ErrExpired, "expired"},
	{directory.ErrFromFuture, "from_future"},
	{directory.ErrPendingSignature, "pending_signature"},
	{directory.ErrAuthorLimit, "author_limit"},
	{directory.ErrQuota, "quota"},
	{ErrAuthorRate, "author_rate"},
}

// RejectReason is the metric label for a rejection error: the directory
// sentinel it wraps, or "other".
func RejectReason(err error) string {
	for _, r := range rejectReasons {
		if errors.Is(err, r.err) {
			return r.reason
		}
	}
	return "other"
}

// NewMetrics starts collecting n's metrics.
func NewMetrics(n *Node) *Metrics {
	m := &Metrics{n: n, done: make(chan struct{})}
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ceiba_records_rejected_total", Help: "Records refused, by reason.",
	}, []string{"reason"})
	m.accepted = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ceiba_records_accepted_total", Help: "Records accepted, by the path they came in on.",
	}, []string{"via"})
	m.syncs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "ceiba_sync_sessions_total", Help: "Finished sync sessions, by result.",
	}, []string{"result"})
	m.propagation = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "ceiba_entry_propagation_seconds",
		Help: "Time from an entry's issue date to its arrival here, by path. Includes publishers' clock skew.",
		// Gossip arrives in seconds; sync within an interval or two; a
		// node back from a week offline sees days.
		Buckets: []float64{0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400},
	}, []string{"via"})
	m.lagged = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "ceiba_metrics_events_missed_total", Help: "Node events the metrics collector missed (it fell behind); counters undercount by this much.",
	})
	d := &m.descs
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	d.peers = desc("ceiba_peers", "Connected peers.")
	d.topicPeers = desc("ceiba_topic_peers", "Peers on the network's GossipSub topic.")
	d.dhtPeers = desc("ceiba_dht_routing_table_peers", "Peers in the DHT routing table.")
	d.records = desc("ceiba_records", "Records in the store.")
	d.unpersisted = desc("ceiba_records_unpersisted", "Records in the state the store could not write yet; nonzero means the disk is failing.")
	d.syncAge = desc("ceiba_last_sync_age_seconds", "Seconds since the last finished sync pull; -1 if none yet.")
	d.freshAge = desc("ceiba_fresh_age_seconds", "Sync lag: seconds since this node last held everything a peer or the DHT had; -1 if never.")
	d.epoch = desc("ceiba_epoch", "Highest effective read-key epoch in the state.")
	d.keyEpoch = desc("ceiba_key_epoch", "Newest read-key epoch this node holds a key for.")
	d.reach = desc("ceiba_reachability", "1 for the current reachability verdict.", "state")
	d.bytesIn = desc("ceiba_p2p_received_bytes_total", "Bytes received by the libp2p host (measured, all protocols).")
	d.bytesOut = desc("ceiba_p2p_sent_bytes_total", "Bytes sent by the libp2p host (measured, all protocols).")
	d.dhtRecords = desc("ceiba_dht_store_records", "Records this node holds in the DHT for the network (its own and others'), under the storage quotas.")
	d.dhtBytes = desc("ceiba_dht_store_bytes", "Bytes this node's DHT store holds on disk, record envelopes included.")
	d.dhtRefused = desc("ceiba_dht_store_refused_total", "DHT puts the storage policy refused: signer not admitted, over the charter's size, or over a quota.")
	d.dhtUnserved = desc("ceiba_dht_unserved_total", "DHT value requests answered with nothing: the asker had drawn its byte budget (the sync budget of its key and peer ID).")
	d.dhtProviders = desc("ceiba_dht_providers", "Provider records (the rendezvous) this node holds for others.")
	d.dhtProvidersRefused = desc("ceiba_dht_providers_refused_total", "Provider records refused: their peer, or the store, held as many as it may.")
	d.heldBack = desc("ceiba_author_versions_held_back_total", "Entry versions held back (not applied, not forwarded) because their organization was over the charter's update rate, by organization fingerprint. Only admitted members appear.", "author")
	d.gossipDropped = desc("ceiba_gossip_dropped_total", "What GossipSub dropped because a queue was full: RPCs (messages or control) to a peer whose outbound queue was full (queue=\"outbound\"), messages at this node's full validation queue (queue=\"validation\"); records they carried wait for sync.", "queue")
	d.throttled = desc("ceiba_p2p_throttled_seconds_total", "Seconds streams waited under the byte-rate cap, summed over streams; growing means the cap slows the node.", "direction")

	events, cancel := n.Subscribe()
	m.cancel = cancel
	go m.follow(events)
	return m
}

// Close stops following the node's events.
func (m *Metrics) Close() {
	m.cancel()
	<-m.done
}

func (m *Metrics) follow(events <-chan Event) {
	defer close(m.done)
	for e := range events {
		switch e.Kind {
		case EventRejected:
			m.rejected.WithLabelValues(RejectReason(e.Err)).Inc()
		case EventRecord:
			m.accepted.WithLabelValues(string(e.Via)).Inc()
			if e.Type == directory.TypeEntry && e.Via != ViaLocal {
				if d, ok := m.entryAge(e); ok {
					m.propagation.WithLabelValues(string(e.Via)).Observe(d.Seconds())
				}
			}
		case EventSync:
			result := "ok"
			if e.Err != nil {
				result = "error"
			}
			m.syncs.WithLabelValues(result).Inc()
		case EventLagged:
			m.lagged.Add(float64(e.Missed))
		}
	}
}

func (m *Metrics) entryAge(e Event) (time.Duration, bool) {
	r, ok := m.n.State().Record(e.Hash)
	if !ok {
		return 0, false
	}
	body, err := r.DecodeBody()
	if err != nil {
		return 0, false
	}
	entry, ok := body.(*directory.Entry)
	if !ok || entry.Issued == 0 {
		return 0, false
	}
	d := e.Time.Sub(time.Unix(entry.Issued, 0))
	// An entry re-issued long ago and only now synced is not a
	// propagation delay worth a bucket; neither is a clock ahead of ours.
	if d < 0 {
		d = 0
	}
	return d, true
}

var _ prometheus.Collector = (*Metrics)(nil)

// Describe implements prometheus.Collector. The vectors describe
// themselves, so a reason first counted after registration is still a
// described metric (DescribeByCollect would only list label values seen so
// far, and a pedantic registry refuses the rest).
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.rejected.Describe(ch)
	m.accepted.Describe(ch)
	m.syncs.Describe(ch)
	m.propagation.Describe(ch)
	m.lagged.Describe(ch)
	d := &m.descs
	for _, desc := range []*prometheus.Desc{d.peers, d.topicPeers, d.dhtPeers, d.records, d.unpersisted,
		d.syncAge, d.freshAge, d.epoch, d.keyEpoch, d.reach, d.bytesIn, d.bytesOut, d.throttled, d.gossipDropped,
		d.dhtRecords, d.dhtBytes, d.dhtRefused, d.heldBack, d.dhtUnserved, d.dhtProviders, d.dhtProvidersRefused} {
		if desc != nil {
			ch <- desc
		}
	}
}

var reachStates = []ReachState{ReachPublic, ReachRelay, ReachUnreachable, ReachUnknown}

// Collect implements prometheus.Collector: the node's status is read at
// scrape time, so an idle exporter costs nothing.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.rejected.Collect(ch)
	m.accepted.Collect(ch)
	m.syncs.Collect(ch)
	m.propagation.Collect(ch)
	m.lagged.Collect(ch)

	st := m.n.Status()
	d := &m.descs
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, labels...)
	}
	age := func(t time.Time) float64 {
		if t.IsZero() {
			return -1
		}
		return time.Since(t).Seconds()
	}
	gauge(d.peers, float64(st.Peers))
	gauge(d.topicPeers, float64(st.TopicPeers))
	gauge(d.dhtPeers, float64(st.DHTPeers))
	gauge(d.records, float64(st.Records))
	gauge(d.unpersisted, float64(st.Unpersisted))
	gauge(d.syncAge, age(st.LastSync))
	gauge(d.freshAge, age(st.FreshAsOf))
	gauge(d.dhtRecords, float64(st.DHTStore.Records))
	gauge(d.dhtBytes, float64(st.DHTStore.Bytes))
	ch <- prometheus.MustNewConstMetric(d.dhtRefused, prometheus.CounterValue, float64(st.DHTStore.Refused))
	ch <- prometheus.MustNewConstMetric(d.dhtUnserved, prometheus.CounterValue, float64(st.DHTStore.Unserved))
	gauge(d.dhtProviders, float64(st.DHTStore.Providers))
	ch <- prometheus.MustNewConstMetric(d.dhtProvidersRefused, prometheus.CounterValue, float64(st.DHTStore.ProvidersRefused))
	for _, h := range st.HeldBack {
		ch <- prometheus.MustNewConstMetric(d.heldBack, prometheus.CounterValue, float64(h.Held), directory.Fingerprint(h.Author))
	}
	gauge(d.epoch, float64(st.Epoch))
	gauge(d.keyEpoch, float64(st.KeyEpoch))
	cur := m.n.Reachability().State
	for _, s := range reachStates {
		v := 0.0
		if s == cur {
			v = 1
		}
		gauge(d.reach, v, string(s))
	}
	bw := m.n.Bandwidth()
	ch <- prometheus.MustNewConstMetric(d.bytesIn, prometheus.CounterValue, float64(bw.TotalIn))
	ch <- prometheus.MustNewConstMetric(d.bytesOut, prometheus.CounterValue, float64(bw.TotalOut))
	th := m.n.Throttled()
	ch <- prometheus.MustNewConstMetric(d.throttled, prometheus.CounterValue, th.Recv.Seconds(), "in")
	ch <- prometheus.MustNewConstMetric(d.throttled, prometheus.CounterValue, th.Send.Seconds(), "out")
	if q := m.n.outq; q != nil {
		ch <- prometheus.MustNewConstMetric(d.gossipDropped, prometheus.CounterValue, float64(q.dropped.Load()), "outbound")
		ch <- prometheus.MustNewConstMetric(d.gossipDropped, prometheus.CounterValue, float64(q.validateFull.Load()), "validation")
	}
}
