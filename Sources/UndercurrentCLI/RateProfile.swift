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

/// The offered load over time.
public enum RateProfile: Sendable, Equatable, CustomStringConvertible {
    case constant(Double)
    /// Linear from `from` to `to` events/s over `seconds`, then `to`.
    case ramp(from: Double, to: Double, seconds: Double)

    public func rate(at t: Double) -> Double {
        switch self {
        case let .constant(r): return r
        case let .ramp(a, b, s): return t >= s ? b : a + (b - a) * t / s
        }
    }

    /// The planned rate of the second that a sample taken at `t` covers (`t - 1` to `t`): the rate at its middle,
    /// and none once that middle is past the test's `duration` (the seconds spent draining). A sample's own end
    /// would make the last second of sending, which ends just after `duration`, look planned at zero.
    public func planned(sampleAt t: Double, duration: Double) -> Double {
        let middle = max(0, t - 0.5)
        return middle <= duration ? rate(at: middle) : 0
    }

    /// Events offered in the first `t` seconds.
    public func total(until t: Double) -> Double {
        switch self {
        case let .constant(r): return r * t
        case let .ramp(a, b, s):
            let u = min(t, s)
            return a * u + (b - a) * u * u / (2 * s) + (t > s ? b * (t - s) : 0)
        }
    }

    /// `5000:200000:60s`.
    public static func parseRamp(_ text: String) throws -> RateProfile {
        let parts = text.split(separator: ":").map(String.init)
        guard parts.count == 3, let a = Double(parts[0]), let b = Double(parts[1]), a > 0, b > 0,
              let s = try? DurationArgument.parse(parts[2], option: "--ramp"), s > 0 else {
            throw ValidationError("--ramp: expected FROM:TO:DURATION in events/s, e.g. 5000:200000:60s; got '\(text)'")
        }
        return .ramp(from: a, to: b, seconds: s)
    }

    public var description: String {
        switch self {
        case let .constant(r): return "\(compact(r)) events/s"
        case let .ramp(a, b, s): return "ramp \(compact(a)) → \(compact(b)) events/s over \(compact(s)) s"
        }
    }
}

/// `30s`, `500ms`, `2m`, or plain seconds.
public enum DurationArgument {
    public static func parse(_ text: String, option: String) throws -> Double {
        let units: [(String, Double)] = [("ms", 0.001), ("us", 0.000_001), ("s", 1), ("m", 60), ("h", 3600)]
        for (u, f) in units where text.hasSuffix(u) {
            if let v = Double(text.dropLast(u.count)), v >= 0, v.isFinite { return v * f }
        }
        if let v = Double(text), v >= 0, v.isFinite { return v }
        throw ValidationError("\(option): expected a duration like 30s, 500ms or 2m; got '\(text)'")
    }
}
