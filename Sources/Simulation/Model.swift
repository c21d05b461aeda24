import Events

/// The configuration turned into ready-to-draw distributions, shared (read-only) by every customer.
final class Model: Sendable {
    let config: SimulationConfig
    let seed: UInt64
    let start: Timestamp
    let end: Timestamp
    let industries: Weighted<String>
    let countries: Weighted<String>
    let channels: Weighted<String>
    let smbPlans: Weighted<Plan>
    let midMarketPlans: Weighted<Plan>
    let reasons: Weighted<FailureReason>
    let incidents: [IncidentWindow]
    let storm: StormControl?
    let omitEngagement: Bool
    private let coreFeatures: [String]
    private let otherFeatures: [String]

    init(_ p: SimulationParameters) throws(ConfigError) {
        config = p.config
        seed = p.seed
        start = p.start
        end = p.end
        func names(_ d: [String: Double]) -> [(String, Double)] { d.sorted { $0.key < $1.key } }
        func plans(_ d: [String: Double], _ key: String) throws(ConfigError) -> Weighted<Plan> {
            var out: [(Plan, Double)] = []
            for (k, w) in names(d) {
                guard let plan = Plan(rawValue: k), plan.isPaid else { throw ConfigError(key: key, message: "'\(k)' is not a paid plan") }
                out.append((plan, w))
            }
            return Weighted(out)
        }
        industries = Weighted(names(p.config.customers.industries))
        countries = Weighted(names(p.config.customers.countries))
        channels = Weighted(names(p.config.customers.channels))
        smbPlans = try plans(p.config.conversion.smbPlans, "conversion.smbPlans")
        midMarketPlans = try plans(p.config.conversion.midMarketPlans, "conversion.midMarketPlans")
        var r: [(FailureReason, Double)] = []
        for (k, w) in names(p.config.payments.reasons) {
            guard let reason = FailureReason(rawValue: k) else { throw ConfigError(key: "payments.reasons", message: "'\(k)' is not a failure reason of events.md") }
            r.append((reason, w))
        }
        reasons = Weighted(r)
        var windows: [IncidentWindow] = []
        for incident in p.config.incidents {
            guard let reason = FailureReason(rawValue: incident.reason) else {
                throw ConfigError(key: "incidents.reason", message: "'\(incident.reason)' is not a failure reason of events.md")
            }
            var plan: Plan? = nil
            if let name = incident.plan {
                guard let pl = Plan(rawValue: name), pl.isPaid else { throw ConfigError(key: "incidents.plan", message: "'\(name)' is not a paid plan") }
                plan = pl
            }
            let from = p.start.adding(ms: Int64(incident.startDay * 86_400_000))
            windows.append(IncidentWindow(name: incident.name, start: from, end: from.adding(ms: Int64(incident.hours * 3_600_000)),
                                          plan: plan, reason: reason, failureRate: incident.failureRate))
        }
        incidents = windows
        storm = p.storm
        omitEngagement = p.omitEngagement
        coreFeatures = p.config.engagement.coreFeatures
        otherFeatures = p.config.engagement.otherFeatures
        guard !coreFeatures.isEmpty, !otherFeatures.isEmpty else {
            throw ConfigError(key: "engagement.coreFeatures", message: "feature lists must not be empty")
        }
        guard !industries.isEmpty, !countries.isEmpty, !channels.isEmpty, !reasons.isEmpty else {
            throw ConfigError(key: "customers", message: "industries, countries, channels and payments.reasons need positive weights")
        }
    }

    func coreFeature(_ rng: inout Xoshiro) -> String { coreFeatures[Int(rng.next() % UInt64(coreFeatures.count))] }
    func otherFeature(_ rng: inout Xoshiro) -> String { otherFeatures[Int(rng.next() % UInt64(otherFeatures.count))] }
    func method(_ rng: inout Xoshiro) -> PaymentMethod { PaymentMethod.allCases[Int(rng.next() % 3)] }

    /// A signup time: growth-weighted over the period, or inside a signup burst.
    func signupTime(_ rng: inout Xoshiro) -> Timestamp {
        let span = Double(end.ms - start.ms)
        var u = rng.unit()
        for burst in config.signupBursts {
            if u < burst.share {
                let from = Double(start.ms) + burst.startDay * 86_400_000
                return Timestamp(ms: Int64(from + rng.unit() * burst.days * 86_400_000))
            }
            u -= burst.share
        }
        let g = config.customers.growth
        let v = rng.unit()
        let x = g.magnitude < 1e-9 ? v : (-1 + (1 + 2 * g * v * (1 + g / 2)).squareRoot()) / g
        return Timestamp(ms: start.ms + Int64(min(x, 0.999_999) * span * 0.97))
    }

    /// Whether an attempt fails, and the reason an incident forces (nil: draw one).
    func attemptFails(at t: Timestamp, plan: Plan, attempt: Int, afterCardUpdate: Bool, multiplier: Double,
                      recovery: Double, _ rng: inout Xoshiro) -> (Bool, FailureReason?) {
        for w in incidents where t >= w.start && t < w.end && (w.plan == nil || w.plan == plan) {
            if rng.chance(w.failureRate) { return (true, w.reason) }
        }
        if let storm {
            let rate = storm.failureRate
            if rate > 0 && rng.chance(rate) { return (true, storm.reason) }
        }
        let p: Double
        if afterCardUpdate { p = 1 - config.payments.successAfterCardUpdate }
        else if attempt == 1 { p = min((config.payments.failureRate[plan.rawValue] ?? 0.06) * multiplier, 0.95) }
        else { p = 1 - min(config.payments.softRetrySuccess * recovery, 0.95) }
        return (rng.chance(p), nil)
    }
}

/// An injected incident in absolute event time (ground truth for alert scoring).
public struct IncidentWindow: Sendable, Codable, Equatable {
    public var name: String
    public var start: Timestamp
    public var end: Timestamp
    public var plan: Plan?
    public var reason: FailureReason
    public var failureRate: Double
}

extension Plan: Codable {}
extension FailureReason: Codable {}

/// A configuration value that cannot be used, naming its key.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var key: String
    public var message: String
    public init(key: String, message: String) {
        self.key = key
        self.message = message
    }
    public var description: String { "config \(key): \(message)" }
}
