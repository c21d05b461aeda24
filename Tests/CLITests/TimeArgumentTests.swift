import Events
import Testing
import UndercurrentCLI

/// Times on the command line: RFC 3339 in its usual forms, each the instant it names; anything else refused
/// with the option's name.
@Suite struct TimeArgumentTests {
    static let noon = Timestamp(year: 2025, month: 3, day: 1).adding(ms: 12 * 3_600_000)

    @Test(arguments: [
        ("2025-03-01T12:00:00.000Z", 0), ("2025-03-01T12:00:00Z", 0), ("2025-03-01t12:00:00z", 0), ("2025-03-01 12:00:00Z", 0),
        ("2025-03-01T12:00:00.5Z", 500), ("2025-03-01T12:00:00.25Z", 250), ("2025-03-01T12:00:00.123456789Z", 123),
        ("2025-03-01T13:00:00+01:00", 0), ("2025-03-01T06:30:00-05:30", 0), ("2025-03-01T12:00:00.250+00:00", 250),
        ("2025-03-02T00:00:00+12:00", 0),
    ])
    func rfc3339FormsNameTheirInstant(_ text: String, _ plusMs: Int64) throws {
        #expect(TimeArgument.time(text) == Self.noon.adding(ms: plusMs), "\(text)")
        #expect(try TimeArgument.parseTime(text, option: "--until") == Self.noon.adding(ms: plusMs))
        #expect(try TimeArgument.parse(text, option: "--from-time") == Self.noon.adding(ms: plusMs))
    }

    @Test(arguments: [
        "2025-03-01T12:00:00", "2025-03-01T12:00Z", "2025-03-01T24:00:00Z", "2025-03-01T12:60:00Z", "2025-03-01T12:00:60Z",
        "2025-13-01T12:00:00Z", "2025-02-30T12:00:00Z", "2025-03-01T12:00:00.Z", "2025-03-01T12:00:00+1:00", "2025-03-01T12:00:00+01:00x",
        "2025-03-01T12:00:00ZZ", "2025-03-01X12:00:00Z", "yesterday", "", "2025-03-01T12:00:00+25:00",
    ])
    func otherTextIsRefusedWithTheOptionsName(_ text: String) {
        #expect(TimeArgument.time(text) == nil, "\(text)")
        #expect(throws: (any Error).self) { try TimeArgument.parseTime(text, option: "--until") }
        do {
            _ = try TimeArgument.parseTime(text, option: "--until")
        } catch {
            #expect("\(error)".contains("--until: expected a time like 2025-06-30T23:59:59Z"))
        }
    }

    /// A range may be one instant (both ends inclusive); an end before its start is refused, naming both.
    @Test func aRangeEndingBeforeItStartsIsRefused() throws {
        let t = try #require(TimeArgument.time("2024-06-01T10:00:00Z"))
        try TimeArgument.checkRange(from: t, fromOption: "--from-time", until: t, untilOption: "--until")
        try TimeArgument.checkRange(from: nil, fromOption: "--from-time", until: t, untilOption: "--until")
        try TimeArgument.checkRange(from: t, fromOption: "--from-time", until: nil, untilOption: "--until")
        #expect(throws: (any Error).self) {
            try TimeArgument.checkRange(from: t, fromOption: "--from-time", until: t.adding(ms: -1), untilOption: "--until")
        }
    }

    @Test func aDateIsItsMidnightWhereADateIsTaken() throws {
        #expect(try TimeArgument.parse("2025-03-01", option: "--from-time") == Timestamp(year: 2025, month: 3, day: 1))
        #expect(throws: (any Error).self) { try TimeArgument.parseTime("2025-03-01", option: "--until") }
    }
}
