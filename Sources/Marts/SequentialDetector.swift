import Events
import Foundation

/// The sequential failure-rate detector's settings (`sequential:` in alerts.yaml).
///
/// Per scope (overall, each paid plan, each decline reason, each plan × reason) a bank of Bernoulli CUSUMs
/// (Page's test on each attempt's log-likelihood ratio; Reynolds & Stoumbos 1999) watches the failure rate
/// of first attempts against a baseline learnt from the stream. Each CUSUM is tuned for one shift (a multiple
/// of the baseline); its threshold comes from the false-alarm budget: the business's `falseAlertsPerMonth`
/// shared evenly by every scope and CUSUM, turned into an in-control run length in attempts at the scope's
/// own attempt rate. So the same file works at any volume: a thin scope needs stronger evidence per attempt
/// and takes longer, a busy one decides in minutes.
public struct SequentialAlerting: Codable, Sendable, Equatable {
    public enum Scope: String, Codable, Sendable, CaseIterable { case overall, plan, reason, planReason = "plan_reason" }

    /// The alerts' rule id.
    public var id: String
    /// False alerts allowed per month for the whole business.
    public var falseAlertsPerMonth: Double
    public var scopes: [Scope]
    /// Failure-rate multiples of the baseline the CUSUMs are tuned for, one CUSUM each.
    public var shifts: [Double]
    /// The smallest failure-rate increase tuned for, in absolute terms: a 0.2% baseline tripling is no outage.
    public var minIncrease: Double
    /// How fast the baseline forgets: a count's weight halves after this many days (event time). It is not
    /// updated while a scope fires or looks suspicious, so an outage does not become the baseline (the minutes held
    /// out while it only looked suspicious go back into it once the suspicion clears without an alert). 28: a thin
    /// scope's baseline is only as good as the failures it holds, and at 7 days a plan × reason failing 0.6-0.9% of
    /// about 33 attempts a day (10,000 customers) held 2 or 3 of them, so its baseline was half or twice the true rate by
    /// chance and an outage there took a failure more to tell; false alerts at 300,000 and 2,000,000 customers were
    /// 0.09 and 0.08 a month (0.11 and 0.06 at 7 days).
    public var baselineHalfLifeDays: Double
    /// The baseline's prior: this many pseudo-attempts at `priorFailureRate` (it leans high, so that a scope
    /// with little history errs towards silence). Few of them (5): a reason's or a plan × reason's true rate is
    /// often 0.1-1%, and at 10,000 customers 20 pseudo-attempts at 10% held such a scope's baseline 3 to 5 times
    /// above it, which slowed detection there (`minBaselineAttempts` keeps a new scope silent anyway).
    public var priorAttempts: Double
    public var priorFailureRate: Double
    /// Attempts (decayed) a scope needs before it may fire.
    public var minBaselineAttempts: Double
    /// Evidence (natural log of the likelihood ratio) that the rate is back at the baseline, rather than at the
    /// outage's rate as measured so far, before a firing scope resolves: 6.9 is odds of 1000 to 1. The least
    /// asked: a scope with many attempts asks more, so that a lucky run of successes while the outage lasts
    /// resolves it by chance less than once in `chanceResolutionDays` days of its attempts
    /// (`SequentialDetector.resolveThreshold`).
    public var resolveEvidence: Double
    /// Days of a busy scope's attempts (at its current rate) in which a lucky run of successes, while an outage
    /// lasts, may resolve its alert by chance once: the longer, the more evidence a busy scope needs to resolve.
    public var chanceResolutionDays: Double
    /// Whether a firing scope also resolves when a wider scope containing it resolves (overall contains each plan
    /// and each reason; a plan and a reason contain their plan × reason), for a shift that began within the wider
    /// scope's episode and its own latest attempts lean towards the baseline: the wider scope's attempts include
    /// the narrower one's, and its recovery test has found them back at its baseline. A thin scope alone waits
    /// for as many clean attempts as its own evidence needs, days of them for a mild outage; one still raised
    /// is a new shift to its reset CUSUMs and fires again.
    public var resolveWithWiderScope: Bool
    /// Whether a firing scope also resolves when a narrower scope it contains resolves, for a shift that began no more
    /// than an hour before its own, once none it contains fires, its own latest attempts lean towards the baseline and its other failures
    /// are within what its baseline explains (`SequentialDetector.resolveWithNarrowerScopes`): the narrower scope
    /// carried the outage and has shown it over, with attempts a thin wider scope would take a day or more to gather.
    public var resolveWithNarrowerScope: Bool
    /// `first`: first attempts only (retries fail far more often and come in dunning waves); `all`: every attempt.
    public var attempts: AlertRules.Rule.AttemptKind

    public init(id: String = "failure-rate-shift", falseAlertsPerMonth: Double = 0.5, scopes: [Scope] = Scope.allCases,
                shifts: [Double] = [2, 8, 40, 200], minIncrease: Double = 0.03, baselineHalfLifeDays: Double = 28, priorAttempts: Double = 5,
                priorFailureRate: Double = 0.1, minBaselineAttempts: Double = 200, resolveEvidence: Double = 6.9,
                chanceResolutionDays: Double = 7, resolveWithWiderScope: Bool = true, resolveWithNarrowerScope: Bool = true, attempts: AlertRules.Rule.AttemptKind = .first) {
        self.id = id
        self.falseAlertsPerMonth = falseAlertsPerMonth
        self.scopes = scopes
        self.shifts = shifts
        self.minIncrease = minIncrease
        self.baselineHalfLifeDays = baselineHalfLifeDays
        self.priorAttempts = priorAttempts
        self.priorFailureRate = priorFailureRate
        self.minBaselineAttempts = minBaselineAttempts
        self.resolveEvidence = resolveEvidence
        self.chanceResolutionDays = chanceResolutionDays
        self.resolveWithWiderScope = resolveWithWiderScope
        self.resolveWithNarrowerScope = resolveWithNarrowerScope
        self.attempts = attempts
    }

    enum CodingKeys: String, CodingKey {
        case id, falseAlertsPerMonth, scopes, shifts, minIncrease, baselineHalfLifeDays, priorAttempts, priorFailureRate,
             minBaselineAttempts, resolveEvidence, chanceResolutionDays, resolveWithWiderScope, resolveWithNarrowerScope, attempts
    }

    /// Every key may be left out (the default above).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = SequentialAlerting()
        id = try c.decodeIfPresent(String.self, forKey: .id) ?? d.id
        falseAlertsPerMonth = try c.decodeIfPresent(Double.self, forKey: .falseAlertsPerMonth) ?? d.falseAlertsPerMonth
        scopes = try c.decodeIfPresent([Scope].self, forKey: .scopes) ?? d.scopes
        shifts = try c.decodeIfPresent([Double].self, forKey: .shifts) ?? d.shifts
        minIncrease = try c.decodeIfPresent(Double.self, forKey: .minIncrease) ?? d.minIncrease
        baselineHalfLifeDays = try c.decodeIfPresent(Double.self, forKey: .baselineHalfLifeDays) ?? d.baselineHalfLifeDays
        priorAttempts = try c.decodeIfPresent(Double.self, forKey: .priorAttempts) ?? d.priorAttempts
        priorFailureRate = try c.decodeIfPresent(Double.self, forKey: .priorFailureRate) ?? d.priorFailureRate
        minBaselineAttempts = try c.decodeIfPresent(Double.self, forKey: .minBaselineAttempts) ?? d.minBaselineAttempts
        resolveEvidence = try c.decodeIfPresent(Double.self, forKey: .resolveEvidence) ?? d.resolveEvidence
        chanceResolutionDays = try c.decodeIfPresent(Double.self, forKey: .chanceResolutionDays) ?? d.chanceResolutionDays
        resolveWithWiderScope = try c.decodeIfPresent(Bool.self, forKey: .resolveWithWiderScope) ?? d.resolveWithWiderScope
        resolveWithNarrowerScope = try c.decodeIfPresent(Bool.self, forKey: .resolveWithNarrowerScope) ?? d.resolveWithNarrowerScope
        attempts = try c.decodeIfPresent(AlertRules.Rule.AttemptKind.self, forKey: .attempts) ?? d.attempts
    }

    /// Every key but `chanceResolutionDays`, `resolveWithWiderScope` and `resolveWithNarrowerScope`, which are written only when they are not
    /// their defaults: the rules' fingerprint (`AlertRules.fingerprint`) of a file without them is the one it had
    /// before the keys existed, so an alert engine checkpointed then is still restored (its state's layout is the
    /// same). A new setting must be written here too (a test counts the keys against the stored properties).
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(falseAlertsPerMonth, forKey: .falseAlertsPerMonth)
        try c.encode(scopes, forKey: .scopes)
        try c.encode(shifts, forKey: .shifts)
        try c.encode(minIncrease, forKey: .minIncrease)
        try c.encode(baselineHalfLifeDays, forKey: .baselineHalfLifeDays)
        try c.encode(priorAttempts, forKey: .priorAttempts)
        try c.encode(priorFailureRate, forKey: .priorFailureRate)
        try c.encode(minBaselineAttempts, forKey: .minBaselineAttempts)
        try c.encode(resolveEvidence, forKey: .resolveEvidence)
        if chanceResolutionDays != SequentialAlerting().chanceResolutionDays {
            try c.encode(chanceResolutionDays, forKey: .chanceResolutionDays)
        }
        if resolveWithWiderScope != SequentialAlerting().resolveWithWiderScope {
            try c.encode(resolveWithWiderScope, forKey: .resolveWithWiderScope)
        }
        if resolveWithNarrowerScope != SequentialAlerting().resolveWithNarrowerScope {
            try c.encode(resolveWithNarrowerScope, forKey: .resolveWithNarrowerScope)
        }
        try c.encode(attempts, forKey: .attempts)
    }

    /// Checks every value; the message names the key.
    public func validate() throws(ConfigProblem) {
        func check(_ ok: Bool, _ key: String, _ expected: String) throws(ConfigProblem) {
            if !ok { throw ConfigProblem("sequential.\(key): expected \(expected)") }
        }
        try check(!id.isEmpty, "id", "a name")
        try check(falseAlertsPerMonth.isFinite && falseAlertsPerMonth > 0 && falseAlertsPerMonth <= 1000, "falseAlertsPerMonth", "a number above 0 and at most 1000")
        try check(!scopes.isEmpty && Set(scopes).count == scopes.count, "scopes", "one or more of overall, plan, reason, plan_reason, each once")
        try check(!shifts.isEmpty && shifts.count <= 8 && shifts.allSatisfy { $0.isFinite && $0 > 1 && $0 <= 1000 }, "shifts",
                  "1 to 8 multiples of the baseline, each above 1 and at most 1000")
        try check(minIncrease.isFinite && minIncrease > 0 && minIncrease < 0.9, "minIncrease", "a rate above 0 and below 0.9")
        try check(baselineHalfLifeDays.isFinite && baselineHalfLifeDays >= 0.1 && baselineHalfLifeDays <= 365, "baselineHalfLifeDays", "0.1 to 365 days")
        try check(priorAttempts.isFinite && priorAttempts >= 0 && priorAttempts <= 1e6, "priorAttempts", "0 to 1000000")
        try check(priorFailureRate.isFinite && priorFailureRate > 0 && priorFailureRate < 1, "priorFailureRate", "a rate above 0 and below 1")
        try check(minBaselineAttempts.isFinite && minBaselineAttempts >= 0 && minBaselineAttempts <= 1e9, "minBaselineAttempts", "0 to 1000000000")
        try check(resolveEvidence.isFinite && resolveEvidence > 0 && resolveEvidence <= 100, "resolveEvidence", "a number above 0 and at most 100")
        try check(chanceResolutionDays.isFinite && chanceResolutionDays >= 0.01 && chanceResolutionDays <= 3650, "chanceResolutionDays",
                  "0.01 to 3650 days")
    }

    /// The scopes watched, in the engine's counter layout: (counter scope index, name).
    public var watched: [(index: Int, name: String)] {
        var out: [(Int, String)] = []
        for scope in scopes {
            switch scope {
            case .overall: out.append((0, "overall"))
            case .plan: out += Plan.paid.map { ($0.rank, "plan:\($0.rawValue)") }
            case .reason: out += FailureReason.allCases.map { (4 + Int($0.index), "reason:\($0.rawValue)") }
            case .planReason:
                out += Plan.paid.flatMap { p in FailureReason.allCases.map { r in (AlertEngine.planReasonScope(p, r), "plan:\(p.rawValue)/reason:\(r.rawValue)") } }
            }
        }
        return out
    }

    /// The CUSUM threshold h (nats) for an in-control run length of `arl0` attempts: Siegmund's approximation
    /// ARL₀ ≈ (eʰ − h − 1) / KL(p₀‖p₁) solved for h. It ignores the overshoot past h, which only makes false
    /// alarms rarer: right for a statistic that moves in small steps (the recovery test's).
    public static func threshold(arl0: Double, kl01: Double) -> Double {
        let x = max(arl0 * kl01, 1)
        var h = log(x + 1)
        for _ in 0..<6 { h = log(x + h + 1) }
        return h
    }

    /// The threshold h (nats) of the Bernoulli CUSUM of `p0` against `p1 > p0` for an in-control run length of
    /// `arl0` attempts, with the overshoot accounted for. Each failure lifts the statistic by a = ln(p₁/p₀), several
    /// nats for a large shift, so it crosses h by some R in [0, a), and a false alarm's chance per excursion from
    /// zero is e⁻ʰ·E[e⁻ᴿ], not e⁻ʰ. Taking R uniform on [0, a): E[e⁻ᴿ] = (1 − e⁻ᵃ)/a = e^(−ρ), and Siegmund's
    /// approximation with h + ρ in place of h gives h = `threshold(arl0:kl01:)` − ρ, never below half of it (a
    /// small run length asked for is left with a threshold that still needs evidence).
    /// - Exact run lengths (the Markov chain of the statistic, `SequentialDetectorTests`) over shifts of 40 and 200
    ///   times baselines of 0.1-0.4% and run lengths of 10⁴ to 3·10⁶ attempts: without ρ, 2.3 to 53 times `arl0`
    ///   (median 3.8), so a business saw a fraction of the false alerts it budgeted and its outages were caught a
    ///   failure later than that budget allowed; with ρ, 0.55 to 8.7 times (median 1.0). Which factor a threshold
    ///   gets depends on where h falls on the lattice of the statistic's values; where p₁ is capped at 0.95 the
    ///   run lengths stay longer than asked.
    public static func threshold(arl0: Double, p0: Double, p1: Double) -> Double {
        let h = threshold(arl0: arl0, kl01: kl(p0, p1))
        return max(h - overshoot(p0: p0, p1: p1), h / 2)
    }

    /// ρ = ln(a / (1 − e⁻ᵃ)), a = ln(p₁/p₀): the nats a test of `p0` against `p1` may take off a threshold set by
    /// e⁻ʰ alone, its overshoot past the threshold taken as uniform on [0, a) (`threshold(arl0:p0:p1:)`).
    public static func overshoot(p0: Double, p1: Double) -> Double {
        let a = log(p1 / p0)
        return a > 1e-9 ? log(a / -expm1(-a)) : 0
    }

    /// The Wilson score interval's lower end at z = 1.96 (95%, two-sided) for `failures` in `attempts`.
    public static func lowerBound(failures: Int64, attempts: Int64) -> Double {
        guard attempts > 0 else { return 0 }
        let n = Double(attempts), p = Double(failures) / n, z = 1.96, z2 = z * z
        return max(0, (p + z2 / (2 * n) - z * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot()) / (1 + z2 / n))
    }

    public static func kl(_ p: Double, _ q: Double) -> Double {
        p * log(p / q) + (1 - p) * log((1 - p) / (1 - q))
    }
}

/// One scope's detector: its baseline, its CUSUMs and, while it fires, the evidence that the rate is back.
struct ScopeDetector: Sendable, Equatable {
    /// Decayed attempts and failures (the baseline's data), as of `baselineMinute`.
    var baseAttempts = 0.0
    var baseFailures = 0.0
    var baselineMinute: Int64 = 0
    /// The first minute this scope had an attempt (the attempt rate counts from it).
    var firstMinute: Int64?
    /// Per CUSUM: its statistic (nats), the minute it last rose from zero, and the attempts and failures since.
    var cusums: [Cusum]
    var firing: Firing?
    /// Attempts and failures of minutes held out of the baseline while the scope looked suspicious (decayed with it):
    /// added to it once every CUSUM is back at zero without an alert, dropped when the scope fires. Left out for
    /// good, they biased a thin scope's baseline low: there one or two chance failures of a rare reason make the
    /// scope suspicious, so its failures never reached the baseline while its successes did, and the next chance
    /// failures looked like an outage (at 30,000 customers a budget of 2 false alerts a month raised 1.5 a month; 0.2 with
    /// them held and returned).
    var heldAttempts = 0.0
    var heldFailures = 0.0
    /// Every attempt, firing or not, decayed with `SequentialDetector.rateHalfLifeMinutes` as of `baselineMinute`: the
    /// scope's attempt rate, which sets its thresholds. A memory of its own, shorter than the baseline's: with the
    /// baseline's 28 days it lagged a growing business (4.9 first attempts an hour at 20,000 customers after 3
    /// months, where a week's memory reads 6.5).
    var rateAttempts = 0.0

    struct Cusum: Sendable, Equatable {
        var statistic = 0.0
        var since: Int64 = 0
        var attempts: Int64 = 0
        var failures: Int64 = 0
    }

    struct Firing: Sendable, Equatable {
        /// The alert's time (ms) and the estimated start of the shift (minute).
        var at: Int64
        var shiftStart: Int64
        /// The baseline, and the outage's rate the recovery test weighs it against now (`recoveryRate`).
        var baseline: Double
        var rate: Double
        var recovery = 0.0
        var attempts: Int64
        var failures: Int64
    }

    init(designs: Int) { cusums = Array(repeating: Cusum(), count: designs) }
}

/// The detectors of every watched scope, fed one minute of counts at a time (in minute order, by the alert
/// engine once the watermark has passed the minute, so a replay and a live run feed the same minutes).
public struct SequentialDetector: Sendable, Equatable {
    public let config: SequentialAlerting
    let watched: [(index: Int, name: String)]
    /// Indices into `watched` from the widest scope to the narrowest (`overall`, then plans and reasons, then plan ×
    /// reasons), whatever order the config lists the scopes in: resolutions cascade along it.
    let widestFirst: [Int]
    var scopes: [ScopeDetector]

    public init(config: SequentialAlerting) {
        self.config = config
        let watched = config.watched
        self.watched = watched
        widestFirst = watched.indices.sorted { (Self.depth(watched[$0].name), $0) < (Self.depth(watched[$1].name), $1) }
        scopes = Array(repeating: ScopeDetector(designs: config.shifts.count), count: watched.count)
    }

    public static func == (a: SequentialDetector, b: SequentialDetector) -> Bool { a.config == b.config && a.scopes == b.scopes }

    /// Scopes firing now.
    public var firing: [String] { zip(watched, scopes).filter { $0.1.firing != nil }.map(\.0.name) }

    static let minutesPerMonth = 30.44 * 24 * 60

    /// Feeds one minute's counts (the engine's layout: attempts and failures per scope, first attempts then all)
    /// and returns the alerts it raises or resolves, stamped at the end of the minute.
    mutating func observe(minute: Int64, counts: [Int32]) -> [Alert] {
        let set = config.attempts == .first ? 0 : AlertEngine.scopeCount * 2
        let halfLife = self.halfLife, budget = budgetPerTest
        let at = (minute + 1) * AlertEngine.minute
        var out: [Alert] = []
        for (i, scope) in watched.enumerated() {
            let n = Int64(counts[set + scope.index * 2]), f = Int64(counts[set + scope.index * 2 + 1])
            guard n > 0 else { continue }
            var d = scopes[i]
            if d.firstMinute == nil {
                d.firstMinute = minute
                d.baselineMinute = minute
            }
            let decay = exp2(-Double(minute - d.baselineMinute) / halfLife)
            d.baseAttempts *= decay
            d.baseFailures *= decay
            d.heldAttempts *= decay
            d.heldFailures *= decay
            d.rateAttempts = d.rateAttempts * exp2(-Double(minute - d.baselineMinute) / Self.rateHalfLifeMinutes) + Double(n)
            d.baselineMinute = minute
            let p0 = baseline(d)
            let (nd, fd) = (Double(n), Double(f))
            if var firing = d.firing {
                // Is the rate back? A CUSUM of the baseline against the outage's rate as measured so far (`recoveryRate`).
                let p1 = firing.rate
                firing.recovery = max(0, firing.recovery + fd * log(firing.baseline / p1) + (nd - fd) * log((1 - firing.baseline) / (1 - p1)))
                firing.attempts += n
                firing.failures += f
                // The outage's rate is learnt while the attempts still look like it (no evidence of recovery): after
                // it ends, clean attempts would pull the estimate towards the baseline and slow the test down.
                if firing.recovery == 0 { firing.rate = recoveryRate(p0: firing.baseline, failures: firing.failures, attempts: firing.attempts) }
                if firing.recovery >= resolveThreshold(p0: firing.baseline, p1: p1, attemptsPerMinute: attemptsPerMinute(d, minute: minute)) {
                    out.append(resolution(scope.name, firing, minute: minute))
                    d.firing = nil
                    d.cusums = Array(repeating: .init(), count: config.shifts.count)
                } else {
                    d.firing = firing
                }
                scopes[i] = d
                continue  // the baseline stays as it was before the shift
            }
            var suspicious = false
            if d.baseAttempts >= config.minBaselineAttempts {
                let arl0 = max(attemptsPerMinute(d, minute: minute) * Self.minutesPerMonth / budget, 10)
                var best: (k: Int, ratio: Double, h: Double)?
                for (k, shift) in config.shifts.enumerated() {
                    let p1 = design(p0, shift)
                    let llr = fd * log(p1 / p0) + (nd - fd) * log((1 - p1) / (1 - p0))
                    var c = d.cusums[k]
                    let rising = c.statistic == 0
                    c.statistic = max(0, c.statistic + llr)
                    if c.statistic == 0 {
                        c = .init()
                    } else {
                        if rising { c.since = minute }
                        c.attempts += n
                        c.failures += f
                    }
                    d.cusums[k] = c
                    let h = SequentialAlerting.threshold(arl0: arl0, p0: p0, p1: p1)
                    if c.statistic >= h / 2 { suspicious = true }
                    if c.statistic >= h, c.statistic / h > best?.ratio ?? 0 { best = (k, c.statistic / h, h) }
                }
                if let best {
                    d.heldAttempts = 0
                    d.heldFailures = 0
                    let c = d.cusums[best.k]
                    let rate = Double(c.failures) / Double(c.attempts)
                    d.firing = ScopeDetector.Firing(at: at, shiftStart: c.since, baseline: p0, rate: recoveryRate(p0: p0, failures: c.failures, attempts: c.attempts),
                                                    attempts: c.attempts, failures: c.failures)
                    out.append(Alert(rule: config.id, scope: scope.name, state: .firing, at: Timestamp(ms: at), firingSince: Timestamp(ms: at),
                                     observedRate: rate, baselineRate: p0, attempts: Int(c.attempts), failures: Int(c.failures),
                                     windowMinutes: Int(minute + 1 - c.since), shiftStart: Timestamp(ms: c.since * AlertEngine.minute),
                                     evidence: c.statistic))
                }
            }
            if d.firing == nil {
                if suspicious {
                    d.heldAttempts += nd
                    d.heldFailures += fd
                } else {
                    d.baseAttempts += nd
                    d.baseFailures += fd
                    if d.heldAttempts > 0, d.cusums.allSatisfy({ $0.statistic == 0 }) {
                        d.baseAttempts += d.heldAttempts
                        d.baseFailures += d.heldFailures
                        d.heldAttempts = 0
                        d.heldFailures = 0
                    }
                }
            }
            scopes[i] = d
        }
        if config.resolveWithWiderScope { resolveWithWiderScopes(&out, minute: minute) }
        if config.resolveWithNarrowerScope { resolveWithNarrowerScopes(&out, minute: minute) }
        return out
    }

    /// The alert resolving a scope's firing at the end of `minute`.
    func resolution(_ scope: String, _ firing: ScopeDetector.Firing, minute: Int64, with wider: String? = nil) -> Alert {
        Alert(rule: config.id, scope: scope, state: .resolved, at: Timestamp(ms: (minute + 1) * AlertEngine.minute), firingSince: Timestamp(ms: firing.at),
              observedRate: Double(firing.failures) / Double(max(firing.attempts, 1)), baselineRate: firing.baseline,
              attempts: Int(firing.attempts), failures: Int(firing.failures), windowMinutes: Int(minute + 1 - firing.shiftStart),
              shiftStart: Timestamp(ms: firing.shiftStart * AlertEngine.minute), evidence: firing.recovery, resolvedWith: wider)
    }

    /// Resolves the firing scopes contained in a scope that resolved this minute (`resolveWithWiderScope`), when
    /// their shift began within its episode (no earlier before its shift's start than that episode lasted, an
    /// hour at least) and their own attempts since their last failure favour the baseline (their recovery test is
    /// above zero). A narrower scope firing since long before was not part of what the wider one saw, and one
    /// whose latest attempts still look like the outage is not over: both stay. Wider scopes come first
    /// (`widestFirst`), so a plan × reason also resolves with a plan or reason that resolved with `overall`.
    mutating func resolveWithWiderScopes(_ out: inout [Alert], minute: Int64) {
        var episodes: [String: Int64] = [:]  // a scope resolved this minute → the start (minute) of its shift
        for a in out where a.state == .resolved { episodes[a.scope] = (a.shiftStart?.ms ?? minute * AlertEngine.minute) / AlertEngine.minute }
        guard !episodes.isEmpty else { return }
        for i in widestFirst {
            let scope = watched[i]
            // One whose own attempts still look like the outage (its recovery test at zero: a failure since its last
            // clean run, or no attempt since it fired) stays.
            guard let firing = scopes[i].firing, firing.recovery > 0 else { continue }
            let within = Self.widerScopes(of: scope.name).first { wider in
                episodes[wider].map { Self.sameEpisode(narrowerStart: firing.shiftStart, widerStart: $0, minute: minute) } ?? false
            }
            guard let wider = within, let start = episodes[wider] else { continue }
            out.append(resolution(scope.name, firing, minute: minute, with: wider))
            episodes[scope.name] = start
            scopes[i].firing = nil
            scopes[i].cusums = Array(repeating: .init(), count: config.shifts.count)
        }
    }

    /// Resolves the firing scopes whose shift a narrower scope resolved this minute explains
    /// (`resolveWithNarrowerScope`): a plan whose plan × reason carried the outage, a reason of one plan's outage,
    /// `overall` of a plan's or a reason's. The wider scope resolves when
    /// - a scope it contains resolved this minute, for a shift that began no more than an hour before its own (so the
    ///   narrower scope's counts fall within its own: one firing since before counts failures it never saw),
    /// - no scope it contains is firing still,
    /// - its own attempts since its last failure favour the baseline (its recovery test is above zero), and
    /// - its failures other than the narrower scope's are no more than its baseline explains: the Poisson test of
    ///   their count against the count their baselines give (its baseline less the narrower one's) finds under
    ///   4.6 nats (odds of 100 to 1) of an excess.
    /// A thin wider scope otherwise waits for clean attempts of its own: a plan seeing 1.3 first attempts an hour,
    /// 6.8% failing, needs about 40 of them to tell its baseline from a 30% outage, 30 hours, long after its
    /// plan × reason (baseline 0.2%) has shown the outage over. It runs from the narrowest scopes outwards
    /// (`widestFirst` reversed), so `overall` may resolve with a plan that resolved with its plan × reason.
    mutating func resolveWithNarrowerScopes(_ out: inout [Alert], minute: Int64) {
        var resolved: [String: Alert] = [:]
        for a in out where a.state == .resolved { resolved[a.scope] = a }
        guard !resolved.isEmpty else { return }
        var index: [String: Int] = [:]
        for (i, scope) in watched.enumerated() { index[scope.name] = i }
        for i in widestFirst.reversed() {
            let scope = watched[i]
            guard let firing = scopes[i].firing, firing.recovery > 0 else { continue }
            let narrower = watched.filter { Self.widerScopes(of: $0.name).contains(scope.name) }.map(\.name)
            guard !narrower.contains(where: { scopes[index[$0]!].firing != nil }) else { continue }
            // (Of several, the first by name: the alerts do not depend on the order the config lists the scopes in.)
            let explaining = narrower.compactMap { resolved[$0] }.filter { Self.explains($0, firing, minute: minute) }.min { $0.scope < $1.scope }
            guard let explaining else { continue }
            let alert = resolution(scope.name, firing, minute: minute, with: explaining.scope)
            out.append(alert)
            resolved[scope.name] = alert
            scopes[i].firing = nil
            scopes[i].cusums = Array(repeating: .init(), count: config.shifts.count)
        }
    }

    /// Whether a narrower scope's resolution (`narrower`, its counts since its shift began) explains a wider scope's
    /// firing (`resolveWithNarrowerScopes`): its shift began no more than an hour before the wider one's, and the wider
    /// scope's other failures are within what its baseline less the narrower one's gives.
    static func explains(_ narrower: Alert, _ wider: ScopeDetector.Firing, minute: Int64) -> Bool {
        let start = (narrower.shiftStart?.ms ?? minute * AlertEngine.minute) / AlertEngine.minute
        guard start >= wider.shiftStart - 60 else { return false }
        let other = Double(max(0, wider.failures - Int64(narrower.failures)))
        let expected = max(1e-9, wider.baseline * Double(wider.attempts) - narrower.baselineRate * Double(narrower.attempts))
        return excessEvidence(count: other, expected: expected) < log(100.0)
    }

    /// The evidence (nats) that a Poisson count is above its expected value: the log-likelihood ratio of the count's
    /// own mean against `expected` (0 at or below it).
    static func excessEvidence(count: Double, expected: Double) -> Double {
        count > expected ? count * log(count / expected) - count + expected : 0
    }

    /// Whether a narrower scope's shift (from `narrowerStart`) belongs to a wider scope's episode, from
    /// `widerStart` to the end of `minute`: it began no earlier before that start than the episode lasted, an hour
    /// at least.
    static func sameEpisode(narrowerStart: Int64, widerStart: Int64, minute: Int64) -> Bool {
        narrowerStart >= widerStart - max(60, minute + 1 - widerStart)
    }

    /// How many levels narrower than `overall` a scope is: 0 for `overall`, 1 for a plan or a reason, 2 for a plan × reason.
    static func depth(_ scope: String) -> Int { scope == "overall" ? 0 : scope.contains("/") ? 2 : 1 }

    /// The scopes one level wider than `scope`: a plan × reason's plan and reason; a plan's or a reason's `overall`.
    static func widerScopes(of scope: String) -> [String] {
        if scope == "overall" { return [] }
        let parts = scope.split(separator: "/").map(String.init)
        return parts.count > 1 ? parts : ["overall"]
    }
}

extension SequentialDetector {
    /// The baseline's half-life and its time constant, in minutes.
    var halfLife: Double { config.baselineHalfLifeDays * 24 * 60 }
    var tau: Double { halfLife / log(2.0) }
    /// The attempt rate's half-life (`ScopeDetector.rateAttempts`), 7 days, and its time constant, in minutes.
    static let rateHalfLifeMinutes = 7.0 * 24 * 60
    static let rateTau = rateHalfLifeMinutes / log(2.0)
    /// The false alerts a month each scope's CUSUM may raise: the business's budget shared evenly.
    var budgetPerTest: Double { config.falseAlertsPerMonth / Double(watched.count * config.shifts.count) }

    /// A scope's baseline failure rate: its decayed counts and the prior.
    func baseline(_ d: ScopeDetector) -> Double {
        min(0.5, max(1e-5, (d.baseFailures + config.priorAttempts * config.priorFailureRate) / (d.baseAttempts + config.priorAttempts)))
    }

    /// A scope's attempts a minute as of `minute` (its last minute with attempts or later): its decayed count of
    /// attempts (`rateAttempts`) over the decayed time since its first attempt.
    func attemptsPerMinute(_ d: ScopeDetector, minute: Int64) -> Double {
        let elapsed = Double(minute - d.firstMinute! + 1)
        let count = d.rateAttempts * exp2(-Double(minute - d.baselineMinute) / Self.rateHalfLifeMinutes)
        return count / (Self.rateTau * (1 - exp(-elapsed / Self.rateTau)))
    }

    /// The failure rate the CUSUM for `shift` times the baseline is tuned for.
    func design(_ p0: Double, _ shift: Double) -> Double { min(0.95, max(p0 * shift, p0 + config.minIncrease)) }

    /// The outage's rate the recovery test weighs the baseline against: the lower end of the 95% interval of the
    /// rate seen since the shift began, updated every minute while the scope fires and the attempts do not yet
    /// favour the baseline, and never below the smallest shift tuned for. The alert resolves once the attempts
    /// since favour the baseline over it by `resolveThreshold`: once the outage is over, which is what the person
    /// it paged needs to know.
    /// - Against the smallest shift instead (2× or `minIncrease` above the baseline), a 6-hour outage at 30,000
    ///   customers kept firing for 1 to 3 days: telling a 0.6% rate from 3.6% takes about 225 clean attempts, a day
    ///   of them in that scope.
    /// - Against the rate seen when it fired, an outage still under way could look over: a thin scope's few
    ///   attempts overstate it (6 failures in 10 say little more than 30%), and an outage of 25% then looks like
    ///   the baseline next to 60%. The interval's lower end starts low and rises towards the outage's true rate
    ///   as its attempts come in.
    /// - The counts are taken when a failure has just come (the CUSUMs fire on one, and the rate is learnt in
    ///   minutes that leave the recovery test at zero, which a failure does), so that failure is not counted: it
    ///   was chosen by the stopping rule, not drawn (as in inverse binomial sampling, (f − 1)/(n − 1)). Counted, a
    ///   thin scope that fired on 2 failures in 3 attempts weighed the baseline against 21%, the outage's true
    ///   rate, and resolved by chance within the hour.
    /// A rate still raised after the resolution is a new shift, and the CUSUMs, reset, catch it again.
    func recoveryRate(p0: Double, failures: Int64, attempts: Int64) -> Double {
        let bound = SequentialAlerting.lowerBound(failures: max(failures - 1, 0), attempts: max(attempts - 1, 0))
        return max(design(p0, config.shifts.min() ?? 2), min(0.95, bound))
    }

    /// The evidence a firing scope needs to resolve: `resolveEvidence`, or more where the scope sees many attempts.
    /// The recovery test is a CUSUM too, and while the outage lasts at the rate `p1` it weighs against, each of its
    /// excursions is a chance to cross by luck: Siegmund's approximation gives the threshold at which that happens
    /// once in `chanceResolutionDays` (7) days of the scope's attempts. Without it, an outage of 21% in a scope
    /// seeing 2 attempts a minute looked over after a run of 33 successes (a 1-in-2,500 run, so one or two a day),
    /// and paged again.
    func resolveThreshold(p0: Double, p1: Double, attemptsPerMinute: Double) -> Double {
        let attempts = max(attemptsPerMinute * config.chanceResolutionDays * 24 * 60, 10)
        return max(config.resolveEvidence, SequentialAlerting.threshold(arl0: attempts, kl01: SequentialAlerting.kl(p1, p0)))
    }
}

extension SequentialDetector {
    /// The detectors' state, for the alert engine's checkpoint.
    public func encoded() -> [UInt8] {
        var w = BinaryWriter()
        w.u32(UInt32(scopes.count))
        w.u32(UInt32(config.shifts.count))
        for d in scopes {
            w.u64(d.baseAttempts.bitPattern)
            w.u64(d.baseFailures.bitPattern)
            w.i64(d.baselineMinute)
            w.optI64(d.firstMinute)
            for c in d.cusums {
                w.u64(c.statistic.bitPattern)
                w.i64(c.since)
                w.i64(c.attempts)
                w.i64(c.failures)
            }
            w.bool(d.firing != nil)
            if let f = d.firing {
                w.i64(f.at)
                w.i64(f.shiftStart)
                w.u64(f.baseline.bitPattern)
                w.u64(f.rate.bitPattern)
                w.u64(f.recovery.bitPattern)
                w.i64(f.attempts)
                w.i64(f.failures)
            }
        }
        // The counts held out of the baselines, after every scope: a state written before they existed ends above.
        for d in scopes {
            w.u64(d.heldAttempts.bitPattern)
            w.u64(d.heldFailures.bitPattern)
        }
        // Then the attempt rates' counts: a state written before them ends above.
        for d in scopes { w.u64(d.rateAttempts.bitPattern) }
        return w.bytes
    }

    /// Restores `encoded()`'s state; empty bytes give a fresh detector, a layout for other settings an error.
    public init(config: SequentialAlerting, encoded bytes: [UInt8]) throws {
        self.init(config: config)
        guard !bytes.isEmpty else { return }
        var r = BinaryReader(bytes)
        guard Int(try r.u32()) == scopes.count, Int(try r.u32()) == config.shifts.count else {
            throw FormatError(message: "sequential detector state for other settings")
        }
        for i in scopes.indices {
            var d = ScopeDetector(designs: config.shifts.count)
            d.baseAttempts = Double(bitPattern: try r.u64())
            d.baseFailures = Double(bitPattern: try r.u64())
            d.baselineMinute = try r.i64()
            d.firstMinute = try r.optI64()
            for k in d.cusums.indices {
                d.cusums[k] = .init(statistic: Double(bitPattern: try r.u64()), since: try r.i64(), attempts: try r.i64(), failures: try r.i64())
            }
            if try r.bool() {
                d.firing = .init(at: try r.i64(), shiftStart: try r.i64(), baseline: Double(bitPattern: try r.u64()), rate: Double(bitPattern: try r.u64()),
                                 recovery: Double(bitPattern: try r.u64()), attempts: try r.i64(), failures: try r.i64())
            }
            scopes[i] = d
        }
        if r.pos < r.bytes.endIndex {
            for i in scopes.indices {
                scopes[i].heldAttempts = Double(bitPattern: try r.u64())
                scopes[i].heldFailures = Double(bitPattern: try r.u64())
            }
        }
        if r.pos < r.bytes.endIndex {
            for i in scopes.indices { scopes[i].rateAttempts = Double(bitPattern: try r.u64()) }
            guard r.pos == r.bytes.endIndex else { throw FormatError(message: "sequential detector state: bytes after its end") }
        } else {
            // A state written before the attempt rate had a memory of its own: the rate its baseline's counts gave.
            for i in scopes.indices { scopes[i].rateAttempts = rateCount(fromBaselineOf: scopes[i]) }
        }
    }

    /// The attempt-rate count that gives the rate a scope's baseline counts used to give, as of its last minute.
    func rateCount(fromBaselineOf d: ScopeDetector) -> Double {
        guard let first = d.firstMinute else { return 0 }
        let elapsed = Double(d.baselineMinute - first + 1)
        let perMinute = d.baseAttempts / (tau * (1 - exp(-elapsed / tau)))
        return perMinute * Self.rateTau * (1 - exp(-elapsed / Self.rateTau))
    }
}
