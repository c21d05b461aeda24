import Foundation

/// What one scope's detector can catch at its present volume: how long an outage of a given size would take to
/// be told from chance. Thin scopes need hours; the product says so instead of staying silent.
public struct DetectionReach: Sendable, Equatable {
    public var scope: String
    /// The scope's first attempts an hour, as its baseline counts them (decayed, 7-day half-life by default).
    public var attemptsPerHour: Double
    /// The baseline failure rate; nil while the scope has seen too few attempts to learn it.
    public var baselineRate: Double?
    /// The outage's failure rate this is for.
    public var outageRate: Double
    /// The fewest attempts an hour with which the scope's baseline ever holds `minBaselineAttempts`: below it the
    /// scope is never watched.
    public var minimumAttemptsPerHour: Double
    /// The expected hours from the start of such an outage to its alert; nil while the baseline is being learnt,
    /// or when that rate is not above the baseline.
    public var hoursToDetect: Double?

    public init(scope: String, attemptsPerHour: Double, baselineRate: Double?, outageRate: Double, minimumAttemptsPerHour: Double,
                hoursToDetect: Double?) {
        self.scope = scope
        self.attemptsPerHour = attemptsPerHour
        self.baselineRate = baselineRate
        self.outageRate = outageRate
        self.minimumAttemptsPerHour = minimumAttemptsPerHour
        self.hoursToDetect = hoursToDetect
    }
}

extension DetectionReach {
    /// What the detector can catch, in one sentence: the overall scope, and the slowest paid plan with a reach.
    public static func sentence(_ reach: [DetectionReach]) -> String {
        guard let overall = reach.first(where: { $0.scope == "overall" }), overall.attemptsPerHour > 0 else {
            return "no payment attempts seen yet, so no outage can be told from chance"
        }
        let volume = "\(rate(overall.attemptsPerHour)) first attempts an hour"
        guard let hours = overall.hoursToDetect else {
            if overall.baselineRate == nil, overall.attemptsPerHour < overall.minimumAttemptsPerHour {
                return "too few payments to watch: \(volume), where the detector needs \(rate(overall.minimumAttemptsPerHour)) to learn "
                    + "a baseline failure rate, so no outage can be told from chance"
            }
            return "still learning the baseline failure rate (\(volume) so far)"
        }
        let percent = Int((overall.outageRate * 100).rounded())
        var s = "an outage failing \(percent)% of all first attempts would be caught in about \(duration(hours)) (\(volume))"
        let plans = reach.filter { $0.scope.hasPrefix("plan:") && !$0.scope.contains("/") }
        if let slowest = plans.compactMap({ p in p.hoursToDetect.map { (p, $0) } }).max(by: { $0.1 < $1.1 }) {
            s += "; one failing \(percent)% of a single plan's, in up to \(duration(slowest.1)) (\(slowest.0.scope), "
                + "\(rate(slowest.0.attemptsPerHour)) an hour)"
        }
        return s
    }

    /// A rate with one decimal below 10.
    public static func rate(_ perHour: Double) -> String {
        perHour < 10 ? String(format: "%.1f", perHour) : "\(Int(perHour.rounded()))"
    }

    /// Hours as minutes, hours or days.
    public static func duration(_ hours: Double) -> String {
        if hours < 1 { return "\(max(1, Int((hours * 60).rounded()))) min" }
        if hours < 48 { return String(format: "%.1f h", hours) }
        return String(format: "%.0f days", hours / 24)
    }
}

extension SequentialDetector {
    /// Each watched scope's reach at `minute` for an outage failing `outageRate` of the scope's attempts: the
    /// fastest of its CUSUMs, each needing its threshold over its mean log-likelihood ratio per attempt at that
    /// rate (Wald's approximation, without the overshoot), turned into time at the scope's attempt rate.
    public func reach(minute: Int64, outageRate q: Double) -> [DetectionReach] {
        zip(watched, scopes).map { scope, detector in
            var d = detector
            var r = DetectionReach(scope: scope.name, attemptsPerHour: 0, baselineRate: nil, outageRate: q,
                                   minimumAttemptsPerHour: config.minBaselineAttempts / tau * 60, hoursToDetect: nil)
            guard d.firstMinute != nil else { return r }
            let now = max(minute, d.baselineMinute)
            let decay = exp2(-Double(now - d.baselineMinute) / halfLife)
            d.baseAttempts *= decay
            d.baseFailures *= decay
            let perMinute = attemptsPerMinute(d, minute: now)
            r.attemptsPerHour = perMinute * 60
            guard d.baseAttempts >= config.minBaselineAttempts, perMinute > 0 else { return r }
            let p0 = d.firing?.baseline ?? baseline(d)
            r.baselineRate = p0
            guard q > p0, q < 1 else { return r }
            let arl0 = max(perMinute * Self.minutesPerMonth / budgetPerTest, 10)
            var attempts = Double.infinity
            for shift in config.shifts {
                let p1 = design(p0, shift)
                let drift = q * log(p1 / p0) + (1 - q) * log((1 - p1) / (1 - p0))
                guard drift > 0 else { continue }
                attempts = min(attempts, SequentialAlerting.threshold(arl0: arl0, p0: p0, p1: p1) / drift)
            }
            if attempts.isFinite { r.hoursToDetect = attempts / perMinute / 60 }
            return r
        }
    }
}
