import ArgumentParser
import CoreMetrics
import DashboardHTTP
import Foundation
import Hummingbird
import Kafka
import Logging
import ServiceLifecycle
import Telemetry

/// `--metrics-listen HOST:PORT`, shared by every long-running executable.
public struct MetricsOptions: ParsableArguments {
    @Option(help: "Serve Prometheus metrics at http://HOST:PORT/metrics (e.g. 0.0.0.0:9464).") public var metricsListen: String?

    public init() {}

    public func validate() throws {
        if let metricsListen { _ = try ListenAddress.parse(metricsListen, option: "--metrics-listen") }
    }

    /// The endpoint's services (none without the option); `onBound` receives the bound port (useful with port 0).
    func services(_ registry: MetricsRegistry, logger: Logger, onBound: @escaping @Sendable (Int) -> Void = { _ in })
        throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        try services(exposition: { registry.exposition() }, logger: logger, onBound: onBound)
    }

    /// The same for metrics assembled by `exposition` (a dashboard's: a metrics file plus its own).
    func services(exposition: @escaping @Sendable () -> String, logger: Logger, onBound: @escaping @Sendable (Int) -> Void = { _ in })
        throws -> [ServiceGroupConfiguration.ServiceConfiguration] {
        guard let metricsListen else { return [] }
        let address = try ListenAddress.available(metricsListen, option: "--metrics-listen")
        return [MetricsEndpoint.service(exposition, host: address.host, port: address.port, logger: logger) { port in
            Console.err("metrics: \(address.url(port: port))/metrics")
            onBound(port)
        }]
    }
}

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
