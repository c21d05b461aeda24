import Foundation
import Testing

@testable import Events

@Suite struct CalendarTests {
    /// The table behind `fromDays` gives what the computation gives, on every day it covers and beyond both ends.
    @Test func tabulatedDaysEqualComputedOnes() {
        for day in (CivilDate.tableStart - 800)..<(CivilDate.tableStart + 36_525 + 800) {
            let (y, m, d) = CivilDate.fromDays(day)
            #expect((y, m, d) == CivilDate.computeFromDays(day), "day \(day)")
            #expect(CivilDate.toDays(year: y, month: m, day: d) == day)
        }
        #expect(CivilDate.fromDays(CivilDate.tableStart) == (2000, 1, 1))
        #expect(CivilDate.fromDays(CivilDate.tableStart + 36_524) == (2099, 12, 31))
        #expect(CivilDate.fromDays(0) == (1970, 1, 1))
        #expect(CivilDate.fromDays(-1) == (1969, 12, 31))
    }

    /// The word-at-a-time time and date readers against a plain byte-by-byte reading of the same rules, on
    /// valid times and on times with a byte replaced at every position by digits, separators and the bytes
    /// next to them.
    @Test func timesAndDatesAreReadAsAPlainParserReadsThem() {
        var rng = SplitMix64(seed: 7)
        let odd: [UInt8] = [0x00, 0x2D, 0x2E, 0x2F, 0x30, 0x35, 0x39, 0x3A, 0x3B, 0x54, 0x5A, 0x74, 0x7F, 0x80, 0xB0, 0xB9, 0xFF]
        var checked = 0, accepted = 0
        for _ in 0..<40_000 {
            let t = Timestamp(ms: Int64(rng.next() % UInt64(3_200_000_000_000)) + 946_684_800_000 - 50_000_000_000)
            var bytes = t.rfc3339Bytes
            if rng.next() % 4 != 0 {
                let at = Int(rng.next() % 24)
                bytes[at] = rng.next() % 2 == 0 ? odd[Int(rng.next() % UInt64(odd.count))] : UInt8(truncatingIfNeeded: rng.next())
            }
            let expected = Self.plainTime(bytes)
            #expect(Timestamp(rfc3339: bytes) == expected, "\(String(decoding: bytes, as: UTF8.self))")
            if expected != nil { accepted += 1 }
            let date = Array(bytes.prefix(10))
            #expect(Day(iso: date) == Self.plainDate(date), "\(String(decoding: date, as: UTF8.self))")
            checked += 1
        }
        #expect(accepted > 10_000 && accepted < checked)
        // Every day of 2000-2099 and the days just outside, and every day number of a month that has fewer.
        for year in 1999...2100 {
            for month in 0...13 {
                for day in 0...32 {
                    let text = String(format: "%04d-%02d-%02dT23:59:59.999Z", year, month, day)
                    let bytes = Array(text.utf8)
                    #expect(Timestamp(rfc3339: bytes) == Self.plainTime(bytes), "\(text)")
                    #expect(Day(iso: Array(bytes.prefix(10))) == Self.plainDate(Array(bytes.prefix(10))), "\(text)")
                }
            }
        }
    }

    /// events.md's time rule, a byte at a time (the readers' reference).
    static func plainTime(_ b: [UInt8]) -> Timestamp? {
        guard b.count == 24, b[4] == 0x2D, b[7] == 0x2D, b[10] == 0x54, b[13] == 0x3A, b[16] == 0x3A, b[19] == 0x2E, b[23] == 0x5A,
              let year = number(b, 0, 4), let month = number(b, 5, 2), let day = number(b, 8, 2),
              let hour = number(b, 11, 2), let minute = number(b, 14, 2), let second = number(b, 17, 2),
              let milli = number(b, 20, 3),
              (2000...2099).contains(year), (1...12).contains(month), day >= 1, day <= CivilDate.daysIn(year: year, month: month),
              hour < 24, minute < 60, second < 60
        else { return nil }
        return Timestamp(year: year, month: month, day: day, hour: hour, minute: minute, second: second, millisecond: milli)
    }

    static func plainDate(_ b: [UInt8]) -> Day? {
        guard b.count == 10, b[4] == 0x2D, b[7] == 0x2D,
              let year = number(b, 0, 4), let month = number(b, 5, 2), let day = number(b, 8, 2),
              (2000...2099).contains(year), (1...12).contains(month), day >= 1, day <= CivilDate.daysIn(year: year, month: month)
        else { return nil }
        return Day(days: CivilDate.toDays(year: Int64(year), month: Int64(month), day: Int64(day)))
    }

    static func number(_ b: [UInt8], _ at: Int, _ n: Int) -> Int? {
        var v = 0
        for c in b[at..<(at + n)] {
            guard c >= 0x30 && c <= 0x39 else { return nil }
            v = v * 10 + Int(c - 0x30)
        }
        return v
    }
}
