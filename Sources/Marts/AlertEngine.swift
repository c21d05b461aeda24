import Events
import Foundation

/// Failure-spike alert rules (see config/alerts.yaml).
public struct AlertRules: Codable, Sendable, Equatable {
    public var evaluateEverySeconds: Int
    public var allowedLatenessSeconds: Int
    /// Fixed-window rules (see config/examples/alerts-window-rules.yaml).
    public var rules: [Rule]
    /// The sequential detector (config/alerts.yaml).
    public var sequential: SequentialAlerting?

    public init(evaluateEverySeconds: Int, allowedLatenessSeconds: Int, rules: [Rule], sequential: SequentialAlerting? = nil) {
        self.evaluateEverySeconds = evaluateEverySeconds
        self.allowedLatenessSeconds = allowedLatenessSeconds
        self.rules = rules
        self.sequential = sequential
    }

    enum CodingKeys: String, CodingKey { case evaluateEverySeconds, allowedLatenessSeconds, rules, sequential }

    /// The rules as JSON with sorted keys: an alert engine checkpoint written under other rules is not restored,
    /// and a reader of the checkpoint (the dashboard) decodes the rules from it.
    public var fingerprint: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        evaluateEverySeconds = try c.decodeIfPresent(Int.self, forKey: .evaluateEverySeconds) ?? 60
        allowedLatenessSeconds = try c.decodeIfPresent(Int.self, forKey: .allowedLatenessSeconds) ?? 120
        rules = try c.decodeIfPresent([Rule].self, forKey: .rules) ?? []
        sequential = try c.decodeIfPresent(SequentialAlerting.self, forKey: .sequential)
    }

    public struct Rule: Codable, Sendable, Equatable {
        public enum Scope: String, Codable, Sendable { case overall, plan, reason }
        public var id: String
        public var scope: Scope
        public var shortWindowMinutes: Int
        public var longWindowHours: Int
        public var minAttempts: Int
        public var minFailures: Int
        public var factor: Double
        public var minIncrease: Double
        public var resolveAfterEvaluations: Int
        /// How unlikely the failures must be under the baseline rate (a Poisson tail probability): chance
        /// clusters of a quiet hour stay above it. About 10⁶ scope-evaluations happen in a month.
        public var maxPValue: Double
        /// Attempts the long window needs before its rate counts as a baseline (warm-up).
        public var minBaselineAttempts: Int
        /// `first`: first attempts only (retries fail far more often and come in dunning waves days after
        /// an incident, which would page again); `all`: every attempt.
        public var attempts: AttemptKind

        public enum AttemptKind: String, Codable, Sendable { case first, all }

        public init(id: String, scope: Scope, shortWindowMinutes: Int, longWindowHours: Int, minAttempts: Int, minFailures: Int,
                    factor: Double, minIncrease: Double, resolveAfterEvaluations: Int, maxPValue: Double = 1e-7, minBaselineAttempts: Int = 200,
                    attempts: AttemptKind = .first) {
            self.id = id
            self.scope = scope
            self.shortWindowMinutes = shortWindowMinutes
            self.longWindowHours = longWindowHours
            self.minAttempts = minAttempts
            self.minFailures = minFailures
            self.factor = factor
            self.minIncrease = minIncrease
            self.resolveAfterEvaluations = resolveAfterEvaluations
            self.maxPValue = maxPValue
            self.minBaselineAttempts = minBaselineAttempts
            self.attempts = attempts
        }
    }

    /// Checks the values a rule needs; the message names the rule and key.
    public func validate() throws(ConfigProblem) {
        guard evaluateEverySeconds >= 1, evaluateEverySeconds <= 86_400 else { throw ConfigProblem("evaluateEverySeconds must be 1 to 86400") }
        guard allowedLatenessSeconds >= 0, allowedLatenessSeconds <= 86_400 else { throw ConfigProblem("allowedLatenessSeconds must be 0 to 86400") }
        guard !rules.isEmpty || sequential != nil else { throw ConfigProblem("no 'sequential' detector and no 'rules': nothing would ever alert") }
        try sequential?.validate()
        var ids = Set<String>()
        for r in rules {
            guard ids.insert(r.id).inserted else { throw ConfigProblem("rules: id '\(r.id)' appears twice") }
            guard r.shortWindowMinutes >= 1, r.longWindowHours * 60 > r.shortWindowMinutes else {
                throw ConfigProblem("rules[\(r.id)]: shortWindowMinutes must be ≥ 1 and shorter than longWindowHours")
            }
            guard r.longWindowHours <= 24 * 14 else { throw ConfigProblem("rules[\(r.id)].longWindowHours: at most 336") }
            guard r.factor.isFinite, r.factor >= 1, r.minIncrease.isFinite, r.minIncrease >= 0, r.minAttempts >= 1, r.minFailures >= 1, r.resolveAfterEvaluations >= 1,
                  r.maxPValue.isFinite, r.maxPValue > 0, r.maxPValue <= 1, r.minBaselineAttempts >= 0 else {
                throw ConfigProblem("rules[\(r.id)]: factor ≥ 1, minIncrease ≥ 0, minAttempts/minFailures/resolveAfterEvaluations ≥ 1, 0 < maxPValue ≤ 1, minBaselineAttempts ≥ 0")
            }
        }
    }
}

public struct ConfigProblem: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// An alert's lifecycle event. JSON on the `alerts` topic (see README).
public struct Alert: Sendable, Equatable {
    public enum State: String, Sendable { case firing, resolved }
    public var rule: String
    /// `overall`, `plan:premium`, `reason:gateway_timeout`.
    public var scope: String
    public var state: State
    /// The evaluation time (event time) at which the state changed.
    public var at: Timestamp
    /// When the incident began firing (equal to `at` for `firing`).
    public var firingSince: Timestamp
    public var observedRate: Double
    public var baselineRate: Double
    public var attempts: Int
    public var failures: Int
    public var windowMinutes: Int
    /// Sequential detector: when the shift began (its estimate) and the evidence for it (natural log of the
    /// likelihood ratio of the shifted rate against the baseline; for `resolved`, of the baseline against it).
    public var shiftStart: Timestamp?
    public var evidence: Double?
    /// A `resolved` alert that resolved with another scope: a wider one containing it
    /// (`SequentialAlerting.resolveWithWiderScope`) or a narrower one it contains that carried the outage
    /// (`SequentialAlerting.resolveWithNarrowerScope`); nil when it resolved on its own evidence.
    public var resolvedWith: String?

    public init(rule: String, scope: String, state: State, at: Timestamp, firingSince: Timestamp, observedRate: Double,
                baselineRate: Double, attempts: Int, failures: Int, windowMinutes: Int, shiftStart: Timestamp? = nil, evidence: Double? = nil,
                resolvedWith: String? = nil) {
        self.shiftStart = shiftStart
        self.evidence = evidence
        self.resolvedWith = resolvedWith
        self.rule = rule
        self.scope = scope
        self.state = state
        self.at = at
        self.firingSince = firingSince
        self.observedRate = observedRate
        self.baselineRate = baselineRate
        self.attempts = attempts
        self.failures = failures
        self.windowMinutes = windowMinutes
    }

    /// The alert as one JSON object (the `alerts` topic's value, also the webhook body).
    public var json: String {
        func rate(_ r: Double) -> String { String(format: "%.6f", r) }
        return "{\"rule\":\(jsonString(rule)),\"scope\":\(jsonString(scope)),\"state\":\"\(state.rawValue)\",\"at\":\"\(at)\",\"firing_since\":\"\(firingSince)\","
            + "\"observed_rate\":\(rate(observedRate)),\"baseline_rate\":\(rate(baselineRate)),\"attempts\":\(attempts),"
            + "\"failures\":\(failures),\"window_minutes\":\(windowMinutes)"
            + (shiftStart.map { ",\"shift_started\":\"\($0)\"" } ?? "") + (evidence.map { ",\"evidence\":" + String(format: "%.3f", $0) } ?? "")
            + (resolvedWith.map { ",\"resolved_with\":\(jsonString($0))" } ?? "") + "}"
    }
}

/// Computes failure rates over sliding event-time windows and turns them into alerts. A pure state machine:
/// feed it payment attempts (in any order within the allowed lateness) and it returns alerts as event time
/// passes. Event time advances by a watermark: the smallest of the sources' (partitions') newest event times,
/// minus the allowed lateness; a minute is evaluated once the watermark has passed it, so a backfill and a
/// live run of the same events produce the same alerts.
public struct AlertEngine: Sendable {
    public let rules: AlertRules
    static let minute: Int64 = 60_000

    /// Attempt and failure counts per minute and scope; scopes: 0 overall, 1-3 plans, 4... reasons.
    private var buckets: [Int64: [Int32]] = [:]
    /// Running totals after each evaluated minute that had attempts, in minute order: the counts of any
    /// window are one subtraction, and quiet minutes cost nothing (minutes are final once evaluated: later
    /// attempts for them are counted as late).
    private var points: [(minute: Int64, totals: [Int64])] = []
    /// The newest event time seen from each source (partition); the watermark is the smallest.
    private var sourceTimes: [Int: Int64] = [:]
    /// The first minute not evaluated yet.
    private var nextEvaluation: Int64?
    private var open: [String: Open] = [:]
    public private(set) var lateAttempts = 0
    /// The sequential detector, fed each minute's counts as the minute is evaluated.
    private var sequential: SequentialDetector?

    struct Open: Sendable {
        var since: Timestamp
        var quietEvaluations: Int
        var last: (rate: Double, baseline: Double, attempts: Int, failures: Int)
    }

    /// Scopes: 0 overall, 1-3 paid plans, then each reason, then each plan × reason.
    static let scopeCount = 4 + FailureReason.allCases.count * 4
    static func planReasonScope(_ plan: Plan, _ reason: FailureReason) -> Int {
        4 + FailureReason.allCases.count * plan.rank + reason.index
    }
    /// Counters per minute: (attempts, failures) for every scope, first for first attempts, then for all.
    static let counterCount = scopeCount * 4

    public init(rules: AlertRules) {
        self.rules = rules
        sequential = rules.sequential.map(SequentialDetector.init)
    }

    /// Everything the engine remembers, for checkpoints: restoring it and feeding the rest of the stream
    /// gives the alerts an uninterrupted engine gives.
    public struct State: Sendable, Equatable {
        public struct OpenIncident: Sendable, Equatable {
            public var key: String
            public var since: Int64
            public var quietEvaluations: Int
            public var rate: Double, baseline: Double, attempts: Int, failures: Int
            public init(key: String, since: Int64, quietEvaluations: Int, rate: Double, baseline: Double, attempts: Int, failures: Int) {
                self.key = key
                self.since = since
                self.quietEvaluations = quietEvaluations
                self.rate = rate
                self.baseline = baseline
                self.attempts = attempts
                self.failures = failures
            }
        }
        public var buckets: [(minute: Int64, counts: [Int32])]
        public var points: [(minute: Int64, totals: [Int64])]
        public var sourceTimes: [(source: Int, time: Int64)]
        public var nextEvaluation: Int64?
        public var open: [OpenIncident]
        public var lateAttempts: Int
        /// The sequential detector's state (`SequentialDetector.encode`); empty without one.
        public var sequential: [UInt8]

        public init(buckets: [(minute: Int64, counts: [Int32])], points: [(minute: Int64, totals: [Int64])], sourceTimes: [(source: Int, time: Int64)],
                    nextEvaluation: Int64?, open: [OpenIncident], lateAttempts: Int, sequential: [UInt8] = []) {
            self.buckets = buckets
            self.points = points
            self.sourceTimes = sourceTimes
            self.nextEvaluation = nextEvaluation
            self.open = open
            self.lateAttempts = lateAttempts
            self.sequential = sequential
        }

        public static func == (a: State, b: State) -> Bool {
            a.buckets.map(\.minute) == b.buckets.map(\.minute) && a.buckets.map(\.counts) == b.buckets.map(\.counts)
                && a.points.map(\.minute) == b.points.map(\.minute) && a.points.map(\.totals) == b.points.map(\.totals)
                && a.sourceTimes.map(\.source) == b.sourceTimes.map(\.source) && a.sourceTimes.map(\.time) == b.sourceTimes.map(\.time)
                && a.nextEvaluation == b.nextEvaluation && a.open == b.open && a.lateAttempts == b.lateAttempts && a.sequential == b.sequential
        }
    }

    public var state: State {
        State(buckets: buckets.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, points: points,
              sourceTimes: sourceTimes.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, nextEvaluation: nextEvaluation,
              open: open.sorted { $0.key < $1.key }.map { k, o in
                  State.OpenIncident(key: k, since: o.since.ms, quietEvaluations: o.quietEvaluations, rate: o.last.rate,
                                     baseline: o.last.baseline, attempts: o.last.attempts, failures: o.last.failures)
              }, lateAttempts: lateAttempts, sequential: sequential?.encoded() ?? [])
    }

    public init(rules: AlertRules, state: State) {
        self.rules = rules
        for b in state.buckets { buckets[b.minute] = b.counts }
        points = state.points
        for s in state.sourceTimes { sourceTimes[s.source] = s.time }
        nextEvaluation = state.nextEvaluation
        for o in state.open {
            open[o.key] = Open(since: Timestamp(ms: o.since), quietEvaluations: o.quietEvaluations,
                               last: (o.rate, o.baseline, o.attempts, o.failures))
        }
        lateAttempts = state.lateAttempts
        if let config = rules.sequential {
            sequential = (try? SequentialDetector(config: config, encoded: state.sequential)) ?? SequentialDetector(config: config)
        }
    }

    /// Records a payment attempt from `source` (a partition) and returns alerts whose time has come.
    public mutating func observe(_ event: Event, source: Int) -> [Alert] {
        let plan: Plan, failure: FailureReason?, attempt: Int
        switch event.payload {
        case let .paymentSucceeded(_, _, p, _, _, a): plan = p; failure = nil; attempt = a
        case let .paymentFailed(_, _, p, _, _, a, r, _): plan = p; failure = r; attempt = a
        default: return []
        }
        let t = event.occurredAt.ms
        let minute = t / Self.minute
        // Event time starts at the earliest attempt of any source: until a minute with attempts has been
        // evaluated, a source that delivers older attempts than the first one seen moves the start back (which
        // source's batch comes first is a matter of timing, and must not make attempts late).
        if nextEvaluation == nil || (points.isEmpty && minute < nextEvaluation!) { nextEvaluation = minute }
        if let next = nextEvaluation, minute < next {
            lateAttempts += 1  // its minute was evaluated already
        } else {
            if buckets[minute] == nil { buckets[minute] = Array(repeating: 0, count: Self.counterCount) }
            Self.count(into: &buckets[minute]!, plan: plan, failure: failure, firstAttempt: attempt == 1)  // in place, no copy
        }
        sourceTimes[source] = max(sourceTimes[source] ?? .min, t)
        // A source held (expected, nothing from it yet) keeps event time still.
        let oldest = sourceTimes.values.min()!
        guard oldest != .min else { return [] }
        return advance(to: oldest - Int64(rules.allowedLatenessSeconds) * 1000)
    }

    /// Adds one attempt to a minute's counters: every scope it belongs to, among all attempts and (when it is a
    /// first attempt) among first attempts.
    private static func count(into counts: inout [Int32], plan: Plan, failure: FailureReason?, firstAttempt: Bool) {
        func add(_ scope: Int, _ failed: Bool) {
            let all = scopeCount * 2 + scope * 2
            counts[all] += 1
            if failed { counts[all + 1] += 1 }
            if firstAttempt {
                counts[scope * 2] += 1
                if failed { counts[scope * 2 + 1] += 1 }
            }
        }
        add(0, failure != nil)
        add(plan.rank, failure != nil)
        // Per-reason rates count every attempt, failing with this reason or not.
        for r in FailureReason.allCases { add(4 + r.index, failure == r) }
        if plan.rank >= 1 { for r in FailureReason.allCases { add(planReasonScope(plan, r), failure == r) } }
    }

    /// Expects events from `source` (e.g. a partition just assigned): event time does not advance past
    /// it until it sends one, or until `forget(source:)`. Without this, the first partition to deliver
    /// would move event time alone and the others' attempts would arrive late.
    public mutating func hold(source: Int) {
        if sourceTimes[source] == nil { sourceTimes[source] = .min }
    }

    /// Stops waiting for `source` (revoked, or quiet for too long); true if it was held without events.
    @discardableResult
    public mutating func forget(source: Int) -> Bool {
        sourceTimes.removeValue(forKey: source) == .min
    }

    /// Sources expected but silent so far.
    public var heldSources: [Int] { sourceTimes.filter { $0.value == .min }.map(\.key).sorted() }

    /// What the sequential detector can catch now, scope by scope, for an outage failing `outageRate` of a
    /// scope's attempts (see `DetectionReach`); empty without a sequential detector.
    public func detectionReach(outageRate: Double) -> [DetectionReach] {
        guard let sequential, let next = nextEvaluation else { return [] }
        return sequential.reach(minute: next - 1, outageRate: outageRate)
    }

    /// Evaluates every minute that ends at or before `watermark` (the end of input: pass `.max`).
    public mutating func advance(to watermark: Int64) -> [Alert] {
        guard var next = nextEvaluation else { return [] }
        var out: [Alert] = []
        let step = Int64(max(1, rules.evaluateEverySeconds / 60))
        let longestShort = rules.rules.map { Int64($0.shortWindowMinutes) }.max() ?? 10
        let minAttempts = rules.rules.map(\.minAttempts).min() ?? 1
        let lastData = max(points.last?.minute ?? next, buckets.keys.max() ?? next)
        let limit = min(watermark / Self.minute, lastData + 24 * 60)  // minutes [next, limit) may be evaluated
        while next < limit {
            if let b = buckets.removeValue(forKey: next) {
                var running = points.last?.totals ?? Array(repeating: 0, count: Self.counterCount)
                for i in running.indices { running[i] += Int64(b[i]) }
                points.append((next, running))
                if sequential != nil { out += sequential!.observe(minute: next, counts: b) }
            }
            let end = next + 1
            if end % step == 0 && (!open.isEmpty || overallAttempts(end - longestShort, end) >= minAttempts) {
                out += evaluate(endingAt: end)
            }
            next += 1
            // Nothing can fire while no window holds attempts: skip to the next minute with data.
            if open.isEmpty, (points.last?.minute ?? .min) < next - longestShort {
                next = max(next, min(buckets.keys.min() ?? limit, limit))
            }
        }
        nextEvaluation = next
        prune(before: next - Int64(rules.rules.map { $0.longWindowHours * 60 + $0.shortWindowMinutes }.max() ?? 60) - 1)
        return out
    }

    /// Drops points older than `cut`, keeping the last one before it (a window's lower bound needs it).
    private mutating func prune(before cut: Int64) {
        guard points.count > 64, let first = points.firstIndex(where: { $0.minute >= cut }), first > 1 else { return }
        points.removeFirst(first - 1)
    }

    /// Totals after minute m (zeros before the first point).
    private func cumulative(_ m: Int64) -> [Int64]? {
        var lo = 0, hi = points.count  // first index with minute > m
        while lo < hi {
            let mid = (lo + hi) / 2
            if points[mid].minute <= m { lo = mid + 1 } else { hi = mid }
        }
        return lo == 0 ? nil : points[lo - 1].totals
    }

    /// Attempts of every kind in the minutes [from, to), over all scopes.
    private func overallAttempts(_ from: Int64, _ to: Int64) -> Int {
        let i = Self.scopeCount * 2  // "all attempts" set, scope 0
        return Int((cumulative(to - 1)?[i] ?? 0) - (cumulative(from - 1)?[i] ?? 0))
    }

    /// Counts of the minutes in [from, to).
    private func sum(_ from: Int64, _ to: Int64) -> [Int64] {
        let upper = cumulative(to - 1) ?? Array(repeating: 0, count: Self.counterCount)
        guard let lower = cumulative(from - 1) else { return upper }
        return zip(upper, lower).map { $0 - $1 }
    }

    private mutating func evaluate(endingAt end: Int64) -> [Alert] {
        var out: [Alert] = []
        let at = Timestamp(ms: end * Self.minute)
        for rule in rules.rules {
            let short = sum(end - Int64(rule.shortWindowMinutes), end)
            let long = sum(end - Int64(rule.longWindowHours * 60), end - Int64(rule.shortWindowMinutes))
            let scopes: [(Int, String)]
            switch rule.scope {
            case .overall: scopes = [(0, "overall")]
            case .plan: scopes = Plan.paid.map { ($0.rank, "plan:\($0.rawValue)") }
            case .reason: scopes = FailureReason.allCases.map { (4 + $0.index, "reason:\($0.rawValue)") }
            }
            let set = rule.attempts == .first ? 0 : Self.scopeCount * 2
            for (scope, name) in scopes {
                let attempts = Int(short[set + scope * 2]), failures = Int(short[set + scope * 2 + 1])
                let rate = attempts == 0 ? 0 : Double(failures) / Double(attempts)
                let baseAttempts = long[set + scope * 2]
                let baseline = baseAttempts == 0 ? 0 : Double(long[set + scope * 2 + 1]) / Double(baseAttempts)
                // How likely this many failures are at the baseline rate (half a failure of pseudo-count keeps a
                // baseline of zero from making every failure infinitely surprising).
                let p0 = max(baseline, 0.5 / Double(max(baseAttempts, 1)))
                let hot = baseAttempts >= rule.minBaselineAttempts && attempts >= rule.minAttempts && failures >= rule.minFailures
                    && rate >= baseline * rule.factor && rate - baseline >= rule.minIncrease
                    && Self.poissonTail(failures, mean: Double(attempts) * p0) <= rule.maxPValue
                let key = rule.id + "|" + name
                if var o = open[key] {
                    if hot {
                        o.quietEvaluations = 0
                        o.last = (rate, baseline, attempts, failures)
                    } else {
                        o.quietEvaluations += 1
                    }
                    if o.quietEvaluations >= rule.resolveAfterEvaluations {
                        out.append(Alert(rule: rule.id, scope: name, state: .resolved, at: at, firingSince: o.since, observedRate: rate,
                                         baselineRate: baseline, attempts: attempts, failures: failures, windowMinutes: rule.shortWindowMinutes))
                        open[key] = nil
                    } else {
                        open[key] = o
                    }
                } else if hot {
                    open[key] = Open(since: at, quietEvaluations: 0, last: (rate, baseline, attempts, failures))
                    out.append(Alert(rule: rule.id, scope: name, state: .firing, at: at, firingSince: at, observedRate: rate,
                                     baselineRate: baseline, attempts: attempts, failures: failures, windowMinutes: rule.shortWindowMinutes))
                }
            }
        }
        return out
    }

    /// P(X ≥ k) for X ~ Poisson(mean), summed from term k upward (accurate for the tiny tails that matter).
    static func poissonTail(_ k: Int, mean: Double) -> Double {
        guard Double(k) > mean else { return 1 }
        var term = exp(-mean + Double(k) * log(mean) - lgamma(Double(k) + 1))
        var sum = 0.0
        var i = k
        while term > sum * 1e-12 && i < k + 1000 {
            sum += term
            i += 1
            term *= mean / Double(i)
        }
        return min(sum, 1)
    }

    /// Every scope a rule or the sequential detector watches, as (rule id, scope name), and whether it fires now:
    /// what `/metrics` exports as `undercurrent_failure_spike_firing`, so that an Alertmanager pages on it.
    public var watchedScopes: [(rule: String, scope: String, firing: Bool)] {
        let now = Set(firing)
        var out: [(rule: String, scope: String, firing: Bool)] = []
        for rule in rules.rules {
            let names: [String] = switch rule.scope {
            case .overall: ["overall"]
            case .plan: Plan.paid.map { "plan:\($0.rawValue)" }
            case .reason: FailureReason.allCases.map { "reason:\($0.rawValue)" }
            }
            out += names.map { (rule.id, $0, now.contains(rule.id + "|" + $0)) }
        }
        if let d = sequential { out += d.watched.map { (d.config.id, $0.name, now.contains(d.config.id + "|" + $0.name)) } }
        return out
    }

    /// Scopes firing now (window rules as `rule|scope`, the sequential detector's as `id|scope`).
    public var firing: [String] {
        (open.keys + (sequential.map { d in d.firing.map { d.config.id + "|" + $0 } } ?? [])).sorted()
    }
}
