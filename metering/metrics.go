package metering

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the ingest pipeline's Prometheus metrics. The pipeline's own
// (flushes, the key index look-ups, the queue) carry a shard label: the
// shard number on a ClickHouse cluster, where each shard has its own
// ingester, queue and key index, and "" on one server. An ingester given
// the Metrics of NewMetrics records for shard ""; ForShard gives the view
// of one shard.
type Metrics struct {
	Events   *prometheus.CounterVec // by status: accepted, duplicate, conflict, ignored
	Rejected *prometheus.CounterVec // by reason

	// One ingester's (its shard's) series of the vectors below; nil in
	// the Metrics of NewMetrics (an ingester then takes ForShard("")).
	BatchSize     prometheus.Observer // events per flush
	FlushSeconds  prometheus.Observer // look-up + insert latency of a flush
	LookupSeconds prometheus.Observer // the key index look-up of a flush
	InsertSeconds prometheus.Observer // the insert of a flush
	FlushErrors   prometheus.Counter
	QueueDepth    prometheus.Gauge // events waiting for a flush
	QueueBytes    prometheus.Gauge // their bytes (EventBytes)
	Overloaded    prometheus.Counter

	vecs *ingestVecs
}

// ingestVecs are the per-shard metric vectors, shared by every shard's
// view.
type ingestVecs struct {
	batchSize, flushSeconds, lookupSeconds, insertSeconds *prometheus.HistogramVec
	flushErrors, overloaded                               *prometheus.CounterVec
	queueDepth, queueBytes                                *prometheus.GaugeVec
}

// NewMetrics creates the metrics and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	shard := []string{"shard"}
	v := &ingestVecs{
		batchSize: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "postage_ingest_batch_events", Help: "Events per group-commit flush, by shard.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}, shard),
		flushSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "postage_ingest_flush_seconds", Help: "Latency of a flush (id look-up plus insert), by shard.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, shard),
		lookupSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "postage_ingest_lookup_seconds", Help: "Latency of a flush's look-up of its keys in the shard's key index, by shard.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, shard),
		insertSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "postage_ingest_insert_seconds", Help: "Latency of a flush's insert into the event store, by shard.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}, shard),
		flushErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postage_ingest_flush_errors_total", Help: "Flushes that failed (nothing of them was acknowledged), by shard.",
		}, shard),
		queueDepth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "postage_ingest_queue_events", Help: "Events waiting for a flush, by shard.",
		}, shard),
		queueBytes: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "postage_ingest_queue_bytes", Help: "Bytes of the events waiting for a flush (as ingest.queue_bytes counts them), by shard.",
		}, shard),
		overloaded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postage_ingest_overloaded_total", Help: "Requests refused with 429 because the shard's queue was full (events or bytes), by shard.",
		}, shard),
	}
	m := &Metrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postage_events_total", Help: "Events received, by outcome (accepted, duplicate, conflict, ignored).",
		}, []string{"status"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postage_events_rejected_total", Help: "Events rejected by validation, by reason.",
		}, []string{"reason"}),
		vecs: v,
	}
	if reg != nil {
		reg.MustRegister(m.Events, m.Rejected, v.batchSize, v.flushSeconds, v.lookupSeconds, v.insertSeconds,
			v.flushErrors, v.queueDepth, v.queueBytes, v.overloaded)
	}
	return m
}

// ForShard returns the metrics whose pipeline series are shard's (its
// number on a cluster, "" on one server); the request counters are
// shared. A nil m gives nil.
func (m *Metrics) ForShard(shard string) *Metrics {
	if m == nil {
		return nil
	}
	v := m.vecs
	return &Metrics{
		Events: m.Events, Rejected: m.Rejected, vecs: v,
		BatchSize:     v.batchSize.WithLabelValues(shard),
		FlushSeconds:  v.flushSeconds.WithLabelValues(shard),
		LookupSeconds: v.lookupSeconds.WithLabelValues(shard),
		InsertSeconds: v.insertSeconds.WithLabelValues(shard),
		FlushErrors:   v.flushErrors.WithLabelValues(shard),
		QueueDepth:    v.queueDepth.WithLabelValues(shard),
		QueueBytes:    v.queueBytes.WithLabelValues(shard),
		Overloaded:    v.overloaded.WithLabelValues(shard),
	}
}

// CountResults adds a request's per-event results to the counters.
func (m *Metrics) CountResults(results []Result) {
	if m == nil {
		return
	}
	for _, r := range results {
		if r.Status == Rejected {
			m.Rejected.WithLabelValues(r.Reason).Inc()
		} else if r.Status != "" {
			m.Events.WithLabelValues(string(r.Status)).Inc()
		}
	}
}
