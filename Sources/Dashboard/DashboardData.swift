import Charts
import Events
import Foundation
import Marts

/// Everything the dashboard shows, computed once per state change from the merged marts: pages, the API
/// and the narrative all read these tables, so every number they show is a mart's number.
public struct DashboardData: Sendable {
    public let snapshot: MartSnapshot
    public let tables: [String: MartTable]
    public let kpis: ExecutiveKPIs
    public let alerts: [Alert]
    /// One sentence per input topic whose history is partial (the marts were built without its first messages);
    /// empty when every history is whole. Shown as a banner on every page.
    public let historyGaps: [String]
    /// Identifies this state (as-of and counts), for live pages to notice a change.
    public let version: String

    public init(snapshot: MartSnapshot, alerts: [Alert] = [], historyGaps: [String] = []) {
        self.snapshot = snapshot
        self.historyGaps = historyGaps
        var t: [String: MartTable] = [:]
        for table in snapshot.tables() { t[table.name] = table }
        tables = t
        kpis = ExecutiveKPIs(snapshot)
        self.alerts = alerts
        version = "\(snapshot.asOf?.ms ?? 0)-\(snapshot.accepted)-\(snapshot.duplicates)-\(snapshot.rejected)-\(alerts.count)"
    }

    /// The banner's words over a partial history (the pages, the reports): its headline and what follows from it.
    public static let partialHistoryHeadline = "Partial history: these marts were built without the first messages of some inputs."
    public static let partialHistoryConsequence = "Customers who began inside the gap have incomplete histories"

    /// What alerting did not see: payment attempts that came after their minute was evaluated; nil when none did.
    public static func lateAttemptsSentence(_ n: Int) -> String? {
        guard n > 0 else { return nil }
        return "\(n) payment attempt\(n == 1 ? "" : "s") came after \(n == 1 ? "its" : "their") minute was evaluated (more than the rules' "
            + "allowed lateness behind the slowest payments partition): in the marts, but no alert saw \(n == 1 ? "it" : "them")."
    }

    public func table(_ name: String) -> MartTable { tables[name] ?? MartTable(name: name, columns: [], rows: []) }

    public var asOf: Timestamp? { snapshot.asOf }


    /// The latest complete month (the one before as-of's), as the executive KPIs use.
    public var latestCompleteMonth: String? { months.count >= 2 ? months[months.count - 2] : nil }

    /// Every month of the range, in order; the last one holds as-of and is still running.
    public var months: [String] {
        table("mart_payment_reliability").rows.compactMap { if case let .text(m) = $0[0] { m } else { nil } }
    }
}

// MARK: Reading tables

extension MartTable {
    /// The rows as dictionaries of column name → value.
    public var records: [[String: MartValue]] {
        rows.map { row in Dictionary(uniqueKeysWithValues: zip(columns, row).map { ($0, $1) }) }
    }

    /// Rows whose `month`-like first column and `plan` column match the filters (nil: any).
    public func filtered(month: String?, plan: String?) -> MartTable {
        var out = self
        let monthColumn = columns.first { $0 == "month" || $0 == "signup_month" }.flatMap(column)
        let planColumn = column("plan")
        out.rows = rows.filter { row in
            if let month, let i = monthColumn, row[i] != .text(month) { return false }
            if let plan, let i = planColumn, row[i] != .text(plan) { return false }
            return true
        }
        return out
    }
}

extension MartValue {
    public var int: Int64? { if case let .int(v) = self { v } else { nil } }
    public var double: Double? {
        switch self {
        case let .int(v): Double(v)
        case let .rate(v): v
        default: nil
        }
    }
    public var text: String? {
        switch self {
        case let .text(s): s
        case let .time(t): t?.description
        case let .bool(b): b ? "true" : "false"
        default: nil
        }
    }
}


// MARK: Formatting

public enum Format {
    public static func money(_ cents: Int64) -> String {
        let d = Double(cents) / 100
        let sign = d < 0 ? "-" : ""
        let a = abs(d)
        if a >= 1_000_000 { return sign + String(format: "$%.2fM", a / 1_000_000) }
        if a >= 10_000 { return sign + String(format: "$%.1fk", a / 1000) }
        let whole = cents.magnitude / 100, fraction = cents.magnitude % 100
        let grouped = whole >= 1000 ? "\(whole / 1000),\(String(format: "%03d", whole % 1000))" : String(whole)
        return sign + "$" + grouped + "." + String(format: "%02d", fraction)
    }

    public static func percent(_ r: Double?) -> String { r.map { String(format: "%.1f%%", $0 * 100) } ?? "n/a" }
    public static func number(_ r: Double?, digits: Int = 2) -> String { r.map { String(format: "%.\(digits)f", $0) } ?? "n/a" }
    public static func days(_ seconds: Int64?) -> String { seconds.map { String(format: "%.1f days", Double($0) / 86_400) } ?? "n/a" }
}
