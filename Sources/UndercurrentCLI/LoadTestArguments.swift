import ArgumentParser
import Streams

// The load test's arguments as the command line gives them: objectives, a ramp, durations.

extension SLO {
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
}

extension RateProfile {
    /// `5000:200000:60s`.
    public static func parseRamp(_ text: String) throws -> RateProfile {
        let parts = text.split(separator: ":").map(String.init)
        guard parts.count == 3, let a = Double(parts[0]), let b = Double(parts[1]), a > 0, b > 0,
              let s = try? DurationArgument.parse(parts[2], option: "--ramp"), s > 0 else {
            throw ValidationError("--ramp: expected FROM:TO:DURATION in events/s, e.g. 5000:200000:60s; got '\(text)'")
        }
        return .ramp(from: a, to: b, seconds: s)
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
