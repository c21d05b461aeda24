import Consumer
import Archives
import ArgumentParser
import Events
import Foundation
import Kafka
import Logging

/// A time on the command line: RFC 3339 (`2025-03-01T12:00:00Z`, `2025-03-01T12:00:00.250+01:00`) or, where a
/// day's start makes sense, a date (`2025-03-01`, midnight UTC).
public enum TimeArgument {
    public static func parse(_ text: String, option: String) throws -> Timestamp {
        if let t = time(text) { return t }
        if let d = Day(iso: Array(text.utf8)) { return Timestamp(ms: d.days * Timestamp.millisecondsPerDay) }
        throw ValidationError("\(option): expected a time like 2025-03-01T12:00:00Z or a date 2025-03-01, got '\(text)'")
    }

    /// Refuses a time range with its end before its start: nothing is in it, and a run over it would end with
    /// nothing done and exit 0 (a typo in one of the two).
    public static func checkRange(from: Timestamp?, fromOption: String, until: Timestamp?, untilOption: String) throws {
        guard let from, let until, until < from else { return }
        throw ValidationError("\(untilOption) \(until) is before \(fromOption) \(from): no event is in that range")
    }

    /// A time without the date form (for an end such as `--until`, where a bare date would be ambiguous).
    public static func parseTime(_ text: String, option: String) throws -> Timestamp {
        if let t = time(text) { return t }
        throw ValidationError("\(option): expected a time like 2025-06-30T23:59:59Z, got '\(text)'")
    }

    /// An RFC 3339 date-time: `YYYY-MM-DD`, `T` (or `t` or a space), `HH:MM:SS`, an optional fraction of a second
    /// (kept to the millisecond, cut not rounded), then `Z` or an offset `±HH:MM`. The events' own form
    /// (`2025-03-01T12:00:00.000Z`) is one of them.
    public static func time(_ text: String) -> Timestamp? {
        if let t = Timestamp(rfc3339: text) { return t }
        let b = Array(text.utf8)
        guard b.count >= 20, let day = Day(iso: b[0..<10]), [UInt8(ascii: "T"), UInt8(ascii: "t"), 0x20].contains(b[10]),
              b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"),
              let hour = number(b[11..<13]), let minute = number(b[14..<16]), let second = number(b[17..<19]),
              hour < 24, minute < 60, second < 60
        else { return nil }
        var i = 19, milli = 0
        if b[i] == UInt8(ascii: ".") {
            i += 1
            let start = i
            while i < b.count, (0x30...0x39).contains(b[i]) {
                if i - start < 3 { milli = milli * 10 + Int(b[i] - 0x30) }
                i += 1
            }
            guard i > start else { return nil }
            for _ in min(3, i - start)..<3 { milli *= 10 }
        }
        guard i < b.count else { return nil }
        var offsetMinutes = 0
        switch b[i] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            guard i + 1 == b.count else { return nil }
        case UInt8(ascii: "+"), UInt8(ascii: "-"):
            guard i + 6 == b.count, b[i + 3] == UInt8(ascii: ":"), let h = number(b[(i + 1)..<(i + 3)]), let m = number(b[(i + 4)..<(i + 6)]),
                  h < 24, m < 60 else { return nil }
            offsetMinutes = (h * 60 + m) * (b[i] == UInt8(ascii: "-") ? -1 : 1)
        default:
            return nil
        }
        let local = day.days * Timestamp.millisecondsPerDay + Int64(((hour * 60 + minute) * 60 + second) * 1000 + milli)
        return Timestamp(ms: local - Int64(offsetMinutes) * 60_000)
    }

    /// Two ASCII digits as a number.
    private static func number(_ digits: ArraySlice<UInt8>) -> Int? {
        guard digits.count == 2, digits.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        return Int(digits.first! - 0x30) * 10 + Int(digits.last! - 0x30)
    }
}

// MARK: Recording
