import Charts
import Foundation

/// A service-level objective: `p99<50ms`, `lag<5s`, `rate>90000`, `errors<1`.
public struct SLO: Sendable, Equatable, CustomStringConvertible, Codable {
    public enum Metric: String, Sendable, CaseIterable, Codable {
        case p50, p90, p99, p999, max
        case lag
        case deliveryP99 = "delivery_p99"
        case rate
        case errors
        public var isTime: Bool { ![.rate, .errors].contains(self) }
    }
    public var metric: Metric
    public var lessThan: Bool
    /// Seconds for times, events/s for rate, a count for errors.
    public var threshold: Double
    public var text: String

    public init(metric: Metric, lessThan: Bool, threshold: Double, text: String) {
        self.metric = metric
        self.lessThan = lessThan
        self.threshold = threshold
        self.text = text
    }

    public var description: String { text }
}

// MARK: Measurements
