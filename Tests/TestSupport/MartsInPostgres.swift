import Foundation
import Marts
import Postgres
import PostgresSink
import Testing

/// A mart table's rows as the export writes its values (6-digit rates, RFC 3339 times, empty null), sorted.
public func exported(_ t: MartTable) -> [[String]] {
    t.rows.map { row in
        row.map { v in
            switch v {
            case let .int(i): String(i)
            case let .rate(r): r.map { String(format: "%.6f", $0) } ?? ""
            case let .text(s): s
            case let .bool(b): b ? "true" : "false"
            case let .time(t): t?.description ?? ""
            case .null: ""
            }
        }
    }.sorted { $0.lexicographicallyPrecedes($1) }
}

/// The same table read back from PostgreSQL, in the same form.
public func fromDatabase(_ db: PostgresConnection, _ name: String) throws -> [[String]] {
    let t = PostgresSchema.tables.first { $0.name == name }!
    let select = t.columns.map { c -> String in
        switch c.kind {
        case .timestamptz: "to_char(\(c.name) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"
        case .boolean: "CASE WHEN \(c.name) THEN 'true' WHEN NOT \(c.name) THEN 'false' END"
        default: "\(c.name)::text"
        }
    }.joined(separator: ", ")
    let r = try db.execute("SELECT \(select) FROM \(t.qualified)")
    return r.rows.map { row in
        zip(row, t.columns).map { v, c in
            guard let v else { return "" }
            return c.kind == .double ? String(format: "%.6f", Double(v)!) : v
        }
    }.sorted { $0.lexicographicallyPrecedes($1) }
}

/// Every mart in the database equals the export of `states`, row for row and value for value.
public func expectDatabaseEquals(_ states: [MartState], _ db: PostgresConnection, sourceLocation: SourceLocation = #_sourceLocation) throws {
    for table in MartSnapshot(states).tables() {
        let want = exported(table)
        let got = try fromDatabase(db, table.name)
        #expect(got.count == want.count, "\(table.name): \(got.count) rows, export has \(want.count)", sourceLocation: sourceLocation)
        if got != want {
            let diff = zip(got, want).first { $0 != $1 }
            Issue.record("\(table.name) differs from the export; first difference: \(String(describing: diff))", sourceLocation: sourceLocation)
        }
    }
}

