import Events
import Foundation

extension MartTable {
    /// The table as a JSON array of objects, values as in the CSV export (rates with 6 digits, null as null).
    public var json: String {
        var w = EventEncoder.Writer(out: [])
        w.raw("[")
        for (r, row) in rows.enumerated() {
            if r > 0 { w.raw(",") }
            w.raw("{")
            for (i, c) in columns.enumerated() {
                if i > 0 { w.raw(",") }
                w.string(c)
                w.raw(":")
                w.raw(row[i].json)
            }
            w.raw("}")
        }
        w.raw("]")
        return String(decoding: w.out, as: UTF8.self)
    }
}

extension MartValue {
    public var json: String {
        switch self {
        case let .int(v): return String(v)
        case let .rate(v): return v.map { String(format: "%.6f", $0) } ?? "null"
        case let .text(s): return jsonString(s)
        case let .bool(b): return b ? "true" : "false"
        case let .time(t): return t.map { "\"\($0)\"" } ?? "null"
        case .null: return "null"
        }
    }
}
