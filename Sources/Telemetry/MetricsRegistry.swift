import CoreMetrics
import Prometheus
import Synchronization

/// One process's metrics, in Prometheus' text exposition format.
///
/// Instruments are swift-metrics' types (`Counter`, `Meter` as a gauge, `Timer` as a histogram) whose handlers
/// are swift-prometheus collectors in this registry. They are made here rather than through
/// `MetricsSystem.bootstrap`, for two reasons: each gets its `# HELP` text (swift-metrics' API has none, and
/// `promtool check metrics` flags a metric without it), and tests can run several registries in one process.
///
/// Names follow Prometheus' conventions: base units (`_seconds`, `_bytes`), `_total` on counters, and no
/// precomputed rates (PromQL's `rate()` makes them).
public final class MetricsRegistry: Sendable {
    public let prometheus: PrometheusCollectorRegistry
    private let factory: PrometheusMetricsFactory
    private let collectors = Mutex<[@Sendable () -> Void]>([])

    public init() {
        prometheus = PrometheusCollectorRegistry()
        factory = PrometheusMetricsFactory(registry: prometheus)
    }

    private func descriptor(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    /// A counter (its name should end in `_total`). The same name and labels give the same series.
    public func counter(_ name: String, help: String, labels: [(String, String)] = []) -> CoreMetrics.Counter {
        let handler = prometheus.makeCounter(descriptor: descriptor(name, help), labels: labels)
        return CoreMetrics.Counter(label: name, dimensions: labels, handler: handler, factory: factory)
    }

    /// A gauge: `set` it, or `increment` / `decrement` it.
    public func gauge(_ name: String, help: String, labels: [(String, String)] = []) -> Meter {
        let handler = prometheus.makeGauge(descriptor: descriptor(name, help), labels: labels)
        return Meter(label: name, dimensions: labels, handler: handler, factory: factory)
    }

    /// A histogram of durations (its name should end in `_seconds`), with these bucket bounds.
    public func histogram(_ name: String, help: String, labels: [(String, String)] = [], buckets: [Duration]) -> CoreMetrics.Timer {
        let handler = prometheus.makeDurationHistogram(descriptor: descriptor(name, help), labels: labels, buckets: buckets)
        return CoreMetrics.Timer(label: name, dimensions: labels, handler: handler, factory: factory)
    }

    /// Runs `collect` before each exposition, to bring values read from elsewhere (a client's counters) up to date.
    public func onCollect(_ collect: @escaping @Sendable () -> Void) {
        collectors.withLock { $0.append(collect) }
    }

    /// Every metric, in the text exposition format (version 0.0.4).
    public func exposition() -> String {
        for collect in collectors.withLock({ $0 }) { collect() }
        return prometheus.emitToString()
    }

    /// Bucket bounds for durations from a millisecond to a minute (checkpoints, requests, deliveries).
    public static let durationBuckets: [Duration] = [
        .milliseconds(1), .milliseconds(2.5), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5), .seconds(10),
        .seconds(30), .seconds(60),
    ]
}

/// A counter fed with a running total read from elsewhere (a summary, a client's statistics): each `update`
/// adds what the total grew by since the last one. A total that went down (a restarted source) is taken as
/// a new start.
public final class TotalCounter: Sendable {
    private let counter: CoreMetrics.Counter
    private let last = Mutex<Int64>(0)

    public init(_ counter: CoreMetrics.Counter) { self.counter = counter }

    public func update(_ total: Int) {
        let delta: Int64 = last.withLock { last in
            let t = Int64(total)
            defer { last = t }
            return t >= last ? t - last : t
        }
        if delta > 0 { counter.increment(by: delta) }
    }
}
