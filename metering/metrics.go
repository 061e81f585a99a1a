package metering

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the ingest pipeline's Prometheus metrics.
type Metrics struct {
	Events        *prometheus.CounterVec // by status: accepted, duplicate, conflict, ignored
	Rejected      *prometheus.CounterVec // by reason
	BatchSize     prometheus.Histogram   // events per flush
	FlushSeconds  prometheus.Histogram   // look-up + insert latency of a flush
	LookupSeconds prometheus.Histogram   // the id look-up of a flush
	InsertSeconds prometheus.Histogram   // the insert of a flush
	FlushErrors   prometheus.Counter
	QueueDepth    prometheus.Gauge // events waiting for a flush
	QueueBytes    prometheus.Gauge // their bytes (EventBytes)
	Overloaded    prometheus.Counter
}

// NewMetrics creates the metrics and registers them with reg (if not nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postage_events_total", Help: "Events received, by outcome (accepted, duplicate, conflict, ignored).",
		}, []string{"status"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "postage_events_rejected_total", Help: "Events rejected by validation, by reason.",
		}, []string{"reason"}),
		BatchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "postage_ingest_batch_events", Help: "Events per group-commit flush.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		FlushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "postage_ingest_flush_seconds", Help: "Latency of a flush (id look-up plus insert).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		LookupSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "postage_ingest_lookup_seconds", Help: "Latency of a flush's look-up of its keys in the key index.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		InsertSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "postage_ingest_insert_seconds", Help: "Latency of a flush's insert into the event store.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		FlushErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "postage_ingest_flush_errors_total", Help: "Flushes that failed (nothing of them was acknowledged).",
		}),
		QueueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "postage_ingest_queue_events", Help: "Events waiting for a flush.",
		}),
		QueueBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "postage_ingest_queue_bytes", Help: "Bytes of the events waiting for a flush (as ingest.queue_bytes counts them).",
		}),
		Overloaded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "postage_ingest_overloaded_total", Help: "Requests refused with 429 because the queue was full (events or bytes).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.Events, m.Rejected, m.BatchSize, m.FlushSeconds, m.LookupSeconds, m.InsertSeconds, m.FlushErrors, m.QueueDepth, m.QueueBytes, m.Overloaded)
	}
	return m
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
