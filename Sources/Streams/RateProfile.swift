import Charts

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

    public var description: String {
        switch self {
        case let .constant(r): return "\(compact(r)) events/s"
        case let .ramp(a, b, s): return "ramp \(compact(a)) → \(compact(b)) events/s over \(compact(s)) s"
        }
    }
}
