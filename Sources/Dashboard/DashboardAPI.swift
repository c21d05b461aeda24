import Events
import Foundation
import Marts

/// The JSON API's payloads: `Encodable` values written by `JSONEncoder` (mart rows and alerts keep the
/// export's and the `alerts` topic's own writers, so that every place shows the same bytes).
public enum DashboardAPI {
    public static func kpis(_ d: DashboardData) -> String {
        let k = d.kpis
        return encode(KPIs(asOf: k.asOf?.description, latestMonth: k.latestMonth.map(Period.init), allTime: Period(k.allTime),
                           zombieAccounts: k.zombieAccounts, mrrAtRiskCents: k.mrrAtRiskCents))
    }

    public static func narrative(_ d: DashboardData, reach: [DetectionReach]? = nil) -> String {
        let n = Narrative(d, reach: reach)
        return encode(NarrativePayload(insufficient: n.insufficient,
                                       findings: n.findings.map { Finding(id: $0.id, title: $0.title, text: $0.text, numbers: $0.numbers.mapValues(Number.init)) },
                                       recommendations: n.recommendations))
    }

    /// `/health`: whether the state is loaded, its as-of and accepted count, the last load error.
    /// `kafkaWaitingSeconds`: served by a consumer, how long no broker has answered (nil: the cluster answers);
    /// `kafka` then says "connected" or "waiting for the cluster".
    public static func health(loaded: Bool, _ d: DashboardData, lastError: String?, sinks: [SinkHealth] = [],
                              consumer: Bool = false, kafkaWaitingSeconds: Double? = nil) -> String {
        encode(Health(status: loaded ? "ok" : "loading", asOf: d.asOf?.description, accepted: d.snapshot.accepted, lastError: lastError,
                      sinks: sinks, kafka: consumer ? (kafkaWaitingSeconds == nil ? "connected" : "waiting for the cluster") : nil,
                      kafkaWaitingSeconds: kafkaWaitingSeconds, history: d.historyGaps.isEmpty ? "complete" : "partial",
                      historyGaps: d.historyGaps))
    }

    /// A sink that can fall behind the checkpoints (the PostgreSQL sink), in `/health`.
    public struct SinkHealth: Codable, Sendable, Equatable {
        public var name: String
        public var connected: Bool
        public var checkpointsBehind: Int
        public var secondsBehind: Double
        public init(name: String, connected: Bool, checkpointsBehind: Int, secondsBehind: Double) {
            self.name = name
            self.connected = connected
            self.checkpointsBehind = checkpointsBehind
            self.secondsBehind = secondsBehind
        }
        enum CodingKeys: String, CodingKey { case name, connected, checkpointsBehind = "checkpoints_behind", secondsBehind = "seconds_behind" }
    }

    /// `/api/alert-reach`: what the failure-spike detector can catch now, per scope (served by a consumer only):
    /// first attempts an hour, the baseline failure rate and the expected seconds to catch an outage failing
    /// `outage_rate` of the scope's first attempts (null while the baseline is being learnt), and the sentence
    /// the alerts page shows.
    /// nil when the reach is not known.
    public static func alertReach(_ alerting: AlertCoverage) -> String? {
        guard let reach = alerting.reach else { return nil }
        return encode(ReachPayload(summary: DetectionReach.sentence(reach), lateAttempts: alerting.lateAttempts, scopes: reach.map {
            ScopeReach(scope: $0.scope, attemptsPerHour: $0.attemptsPerHour, baselineRate: Rate(value: $0.baselineRate), outageRate: $0.outageRate,
                       secondsToDetect: $0.hoursToDetect.map { ($0 * 3600).rounded() })
        }))
    }

    struct ReachPayload: Encodable {
        var summary: String
        /// Payment attempts left out of alerting as late (in the marts).
        var lateAttempts: Int
        var scopes: [ScopeReach]
        enum CodingKeys: String, CodingKey { case summary, lateAttempts = "late_attempts", scopes }
    }

    struct ScopeReach: Encodable {
        var scope: String
        var attemptsPerHour: Double
        var baselineRate: Rate
        var outageRate: Double
        var secondsToDetect: Double?
        enum CodingKeys: String, CodingKey {
            case scope, attemptsPerHour = "attempts_per_hour", baselineRate = "baseline_rate", outageRate = "outage_rate",
                 secondsToDetect = "seconds_to_detect"
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(scope, forKey: .scope)
            try c.encode((attemptsPerHour * 100).rounded() / 100, forKey: .attemptsPerHour)
            try c.encode(baselineRate, forKey: .baselineRate)
            try c.encode(outageRate, forKey: .outageRate)
            try c.encode(secondsToDetect, forKey: .secondsToDetect)  // null while unknown
        }
    }

    /// `/api/version`: changes whenever the state does (pages poll it to reload).
    public static func version(_ d: DashboardData) -> String { encode(Version(version: d.version, asOf: d.asOf?.description)) }

    /// `/api/marts`: the marts there are, each with the path that serves it.
    public static func martIndex() -> String {
        encode(MartIndex(marts: MartSnapshot.martNames.map { MartIndex.Entry(name: $0, path: "/api/marts/\($0)") }))
    }

    struct MartIndex: Encodable {
        struct Entry: Encodable {
            var name: String
            var path: String
        }
        var marts: [Entry]
    }

    /// An error answer, with the mart names when a mart was not found.
    public static func error(_ message: String, marts: [String]? = nil) -> String { encode(ErrorPayload(error: message, marts: marts)) }

    struct Health: Encodable {
        var status: String
        var asOf: String?
        var accepted: Int
        var lastError: String?
        var sinks: [SinkHealth]
        var kafka: String?
        var kafkaWaitingSeconds: Double?
        var history: String
        var historyGaps: [String]
        enum CodingKeys: String, CodingKey {
            case status, asOf = "as_of", accepted, lastError = "last_error", sinks, kafka, kafkaWaitingSeconds = "kafka_waiting_seconds", history
            case historyGaps = "history_gaps"
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(status, forKey: .status)
            try c.encode(asOf, forKey: .asOf)  // null, not absent
            try c.encode(accepted, forKey: .accepted)
            try c.encode(lastError, forKey: .lastError)
            if !sinks.isEmpty { try c.encode(sinks, forKey: .sinks) }
            try c.encodeIfPresent(kafka, forKey: .kafka)
            try c.encodeIfPresent(kafkaWaitingSeconds.map { ($0 * 10).rounded() / 10 }, forKey: .kafkaWaitingSeconds)
            try c.encode(history, forKey: .history)
            if !historyGaps.isEmpty { try c.encode(historyGaps, forKey: .historyGaps) }
        }
    }

    struct Version: Encodable {
        var version: String
        var asOf: String?
        enum CodingKeys: String, CodingKey { case version, asOf = "as_of" }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(version, forKey: .version)
            try c.encode(asOf, forKey: .asOf)
        }
    }

    struct ErrorPayload: Encodable {
        var error: String
        var marts: [String]?
    }

    static func encode(_ value: some Encodable) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else { return "null" }  // every payload here encodes (no non-finite numbers)
        return String(decoding: data, as: UTF8.self)
    }

    /// A rate with six digits after the point, as in the CSV export; null when undefined.
    struct Rate: Encodable {
        let value: Double?
        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            if let v = value, v.isFinite, let d = Decimal(string: String(format: "%.6f", v)) { try c.encode(d) } else { try c.encodeNil() }
        }
    }

    /// A number of the narrative; null when not finite.
    struct Number: Encodable {
        let value: Double
        func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            if value.isFinite { try c.encode(value) } else { try c.encodeNil() }
        }
    }

    struct Period: Encodable {
        var label: String
        var revenueCents: Int64
        var payingCustomers: Int64
        var paymentFailureRate, averagePaymentAttempts, cancelIntentRate, netMrrChurnRate, activationRate: Rate
        init(_ p: ExecutiveKPIs.Period) {
            label = p.label
            revenueCents = p.revenueCents
            payingCustomers = p.payingCustomers
            paymentFailureRate = Rate(value: p.paymentFailureRate)
            averagePaymentAttempts = Rate(value: p.averagePaymentAttempts)
            cancelIntentRate = Rate(value: p.cancelIntentRate)
            netMrrChurnRate = Rate(value: p.netMrrChurnRate)
            activationRate = Rate(value: p.activationRate)
        }
        enum CodingKeys: String, CodingKey {
            case label, revenueCents = "revenue_cents", payingCustomers = "paying_customers", paymentFailureRate = "payment_failure_rate"
            case averagePaymentAttempts = "average_payment_attempts", cancelIntentRate = "cancel_intent_rate"
            case netMrrChurnRate = "net_mrr_churn_rate", activationRate = "activation_rate"
        }
    }

    struct KPIs: Encodable {
        var asOf: String?
        var latestMonth: Period?
        var allTime: Period
        var zombieAccounts: Int
        var mrrAtRiskCents: Int64
        enum CodingKeys: String, CodingKey {
            case asOf = "as_of", latestMonth = "latest_month", allTime = "all_time", zombieAccounts = "zombie_accounts", mrrAtRiskCents = "mrr_at_risk_cents"
        }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(asOf, forKey: .asOf)  // null, not absent
            try c.encode(latestMonth, forKey: .latestMonth)
            try c.encode(allTime, forKey: .allTime)
            try c.encode(zombieAccounts, forKey: .zombieAccounts)
            try c.encode(mrrAtRiskCents, forKey: .mrrAtRiskCents)
        }
    }

    struct Finding: Encodable {
        var id: String
        var title: String
        var text: String
        var numbers: [String: Number]
    }

    struct NarrativePayload: Encodable {
        var insufficient: String?
        var findings: [Finding]
        var recommendations: [String]
        enum CodingKeys: String, CodingKey { case insufficient, findings, recommendations }
        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(insufficient, forKey: .insufficient)  // null, not absent
            try c.encode(findings, forKey: .findings)
            try c.encode(recommendations, forKey: .recommendations)
        }
    }

    struct TimelineEntry: Encodable {
        var time: String
        var what: String
    }

    public static func alerts(_ d: DashboardData) -> String { "[" + d.alerts.map(\.json).joined(separator: ",") + "]" }

    public static func atRisk(_ d: DashboardData, limit: Int) -> String {
        let rows = PageRenderer(data: d).atRiskRows(limit: limit)
        let table = d.table("mart_customer_360")
        return MartTable(name: table.name, columns: table.columns, rows: rows.map { r in table.columns.map { r[$0] ?? .null } }).json
    }

    public static func customer(_ d: DashboardData, id: String) -> String? {
        guard let state = d.snapshot.customers[id] else { return nil }
        let table = d.table("mart_customer_360")
        let row = MartTable(name: table.name, columns: table.columns, rows: table.rows.filter { $0.first == .text(id) }).json
        let timeline = encode(CustomerTimeline.entries(state).map { TimelineEntry(time: $0.time.description, what: $0.text) })
        return "{\"customer\":\(row.dropFirst().dropLast()),\"timeline\":\(timeline)}"
    }
}
