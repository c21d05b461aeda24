import Consumer
import Config
import ArgumentParser
import Charts
import Events
import Foundation
import Histogram
import Kafka
import Logging
import Marts
import Simulation
import Synchronization
import Yams

/// A service-level objective: `p99<50ms`, `lag<5s`, `rate>90000`, `errors<1`.
public struct SLO: Sendable, Equatable, CustomStringConvertible, Codable {
    public enum Metric: String, Sendable, CaseIterable, Codable {
        case p50, p90, p99, p999, max
        case lag
        case deliveryP99 = "delivery_p99"
        case rate
        case errors
        var isTime: Bool { ![.rate, .errors].contains(self) }
    }
    public var metric: Metric
    public var lessThan: Bool
    /// Seconds for times, events/s for rate, a count for errors.
    public var threshold: Double
    public var text: String

    public static func parse(_ text: String) throws -> SLO {
        let op: Character = text.contains("<") ? "<" : ">"
        let parts = text.split(separator: op, maxSplits: 1).map { String($0).trimmingCharacters(in: .whitespaces) }
        let names = Metric.allCases.map(\.rawValue).joined(separator: ", ")
        guard parts.count == 2, let metric = Metric(rawValue: parts[0]) else {
            throw ValidationError("--slo: expected METRIC<VALUE or METRIC>VALUE with METRIC one of \(names); got '\(text)'")
        }
        let value: Double
        if metric.isTime {
            value = try DurationArgument.parse(parts[1], option: "--slo \(metric.rawValue)")
        } else {
            let v = parts[1].lowercased()
            let scale: Double = v.hasSuffix("k") ? 1e3 : v.hasSuffix("m") ? 1e6 : 1
            guard let n = Double(scale == 1 ? v : String(v.dropLast())), n >= 0 else {
                throw ValidationError("--slo \(metric.rawValue): expected a number, e.g. \(metric.rawValue)\(op)1000; got '\(parts[1])'")
            }
            value = n * scale
        }
        return SLO(metric: metric, lessThan: op == "<", threshold: value, text: text)
    }

    public var description: String { text }
}

// MARK: Measurements
