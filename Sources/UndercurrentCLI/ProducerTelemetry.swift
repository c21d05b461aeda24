import CoreMetrics
import Kafka
import Telemetry

/// A producer's instruments: sent, delivered and failed messages, the in-flight queue, delivery latency.
final class ProducerTelemetry: Sendable {
    let registry: MetricsRegistry
    let deliveryLatency: CoreMetrics.Timer

    init(registry: MetricsRegistry) {
        self.registry = registry
        deliveryLatency = registry.histogram("undercurrent_producer_delivery_latency_seconds",
                                             help: "Time from send to the broker's acknowledgement, per delivered message.",
                                             buckets: MetricsRegistry.durationBuckets)
    }

    /// For `KafkaProducer(onLatency:)`.
    var onLatency: @Sendable (Int64) -> Void {
        let timer = deliveryLatency
        return { microseconds in timer.recordNanoseconds(microseconds * 1000) }
    }

    /// Reads the producer's counters at each scrape.
    func observe(_ producer: KafkaProducer) {
        let sent = TotalCounter(registry.counter("undercurrent_producer_messages_sent_total", help: "Messages handed to the Kafka client."))
        let delivered = TotalCounter(registry.counter("undercurrent_producer_messages_delivered_total", help: "Messages the brokers acknowledged."))
        let failed = TotalCounter(registry.counter("undercurrent_producer_messages_failed_total", help: "Messages whose delivery failed for good."))
        let waits = TotalCounter(registry.counter("undercurrent_producer_backpressure_waits_total",
                                                  help: "Times sending waited for the client's full queue to drain."))
        let queue = registry.gauge("undercurrent_producer_queue_messages", help: "Messages sent but not yet acknowledged or failed.")
        registry.onCollect { [weak producer] in
            guard let s = producer?.statistics else { return }
            sent.update(s.enqueued)
            delivered.update(s.delivered)
            failed.update(s.failed)
            waits.update(s.backpressureWaits)
            queue.set(Double(s.inFlight))
        }
    }
}
