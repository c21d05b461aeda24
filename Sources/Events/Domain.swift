/// Event time: milliseconds since 1970-01-01T00:00:00Z.
public struct Timestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var ms: Int64
    public init(ms: Int64) { self.ms = ms }

    public static func < (a: Timestamp, b: Timestamp) -> Bool { a.ms < b.ms }
    public static let millisecondsPerDay: Int64 = 86_400_000

    public var month: Month {
        let (y, m, _) = CivilDate.fromDays(Int64(floorDiv(ms, Self.millisecondsPerDay)))
        return Month(year: Int(y), month: Int(m))
    }

    public var dayNumber: Int64 { floorDiv(ms, Self.millisecondsPerDay) }

    public func adding(days: Int64) -> Timestamp { Timestamp(ms: ms + days * Self.millisecondsPerDay) }

    /// The same day and time `n` calendar months later, the day clamped to the month's length
    /// (a subscription anniversary).
    public func addingMonths(_ n: Int, anchorDay: Int? = nil) -> Timestamp {
        let days = floorDiv(ms, Self.millisecondsPerDay)
        let rem = ms - days * Self.millisecondsPerDay
        let (y, m, d) = CivilDate.fromDays(days)
        let index = Int(y) * 12 + Int(m) - 1 + n
        let year = index / 12, month = index % 12 + 1
        let day = min(anchorDay ?? Int(d), CivilDate.daysIn(year: year, month: month))
        return Timestamp(ms: CivilDate.toDays(year: Int64(year), month: Int64(month), day: Int64(day)) * Self.millisecondsPerDay + rem)
    }

    /// Day of the month, 1-31.
    public var dayOfMonth: Int { Int(CivilDate.fromDays(floorDiv(ms, Self.millisecondsPerDay)).2) }
    public func adding(ms delta: Int64) -> Timestamp { Timestamp(ms: ms + delta) }

    public init(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0, millisecond: Int = 0) {
        let days = CivilDate.toDays(year: Int64(year), month: Int64(month), day: Int64(day))
        ms = days * Self.millisecondsPerDay + Int64(hour) * 3_600_000 + Int64(minute) * 60_000 + Int64(second) * 1000 + Int64(millisecond)
    }

    /// RFC 3339 UTC with milliseconds: `2025-03-14T10:22:31.123Z`.
    public var description: String { String(decoding: rfc3339Bytes, as: UTF8.self) }

    public var rfc3339Bytes: [UInt8] { [UInt8](capacity: 24) { appendRFC3339(to: &$0) } }

    /// Appends the 24 bytes of `description`.
    public func appendRFC3339(to out: inout [UInt8]) {
        out.append(addingCapacity: 24) { appendRFC3339(to: &$0) }
    }

    /// The same bytes, into an output span (the event encoder's path).
    public func appendRFC3339(to o: inout OutputSpan<UInt8>) {
        let days = floorDiv(ms, Self.millisecondsPerDay)
        let rem = Int(ms - days * Self.millisecondsPerDay)
        Day(days: days).appendISO(to: &o)
        o.append(UInt8(ascii: "T"))
        appendTwoDigits(&o, rem / 3_600_000); o.append(UInt8(ascii: ":"))
        appendTwoDigits(&o, rem / 60_000 % 60); o.append(UInt8(ascii: ":"))
        appendTwoDigits(&o, rem / 1000 % 60); o.append(UInt8(ascii: "."))
        let milli = rem % 1000
        o.append(UInt8(truncatingIfNeeded: 0x30 + milli / 100))
        appendTwoDigits(&o, milli % 100)
        o.append(UInt8(ascii: "Z"))
    }

    /// Parses exactly `YYYY-MM-DDTHH:MM:SS.mmmZ` with a real calendar time in the years 2000-2099.
    public init?(rfc3339 bytes: [UInt8]) { self.init(rfc3339: bytes.span) }
    public init?(rfc3339 bytes: ArraySlice<UInt8>) { self.init(rfc3339: bytes.span) }

    /// Read as three words: each one's separators compared at once and its digits checked and made values
    /// together (`CivilDate.digitWord`), the day found in a table of month starts.
    public init?(rfc3339 b: borrowing Span<UInt8>) {
        guard b.count == 24,
              let w0 = CivilDate.digitWord(ByteWords.load(b, 0), digits: 0x00FF_FF00_FFFF_FFFF, literal: 0x2D00_002D_0000_0000),  // YYYY-MM-
              let w1 = CivilDate.digitWord(ByteWords.load(b, 8), digits: 0xFFFF_00FF_FF00_FFFF, literal: 0x0000_3A00_0054_0000),  // DDTHH:MM
              let w2 = CivilDate.digitWord(ByteWords.load(b, 16), digits: 0x00FF_FFFF_00FF_FF00, literal: 0x5A00_0000_2E00_003A)  // :SS.mmmZ
        else { return nil }
        let d = CivilDate.digit
        let hour = d(w1, 3) * 10 + d(w1, 4), minute = d(w1, 6) * 10 + d(w1, 7), second = d(w2, 1) * 10 + d(w2, 2)
        guard let day = CivilDate.dayNumber(w0, day: d(w1, 0) * 10 + d(w1, 1)), hour < 24, minute < 60, second < 60 else { return nil }
        let milli = d(w2, 4) * 100 + d(w2, 5) * 10 + d(w2, 6)
        ms = day * Self.millisecondsPerDay + Int64(hour * 3_600_000 + minute * 60_000 + second * 1000 + milli)
    }

    public init?(rfc3339 text: String) { self.init(rfc3339: Array(text.utf8)) }
}

/// A UTC calendar month, `YYYY-MM`.
public struct Month: Hashable, Comparable, Sendable, CustomStringConvertible, Strideable {
    /// year * 12 + (month - 1)
    public var index: Int32
    public init(index: Int32) { self.index = index }
    public init(year: Int, month: Int) { index = Int32(year * 12 + month - 1) }

    public var year: Int { Int(index) / 12 }
    public var month: Int { Int(index) % 12 + 1 }
    public static func < (a: Month, b: Month) -> Bool { a.index < b.index }
    public func advanced(by n: Int) -> Month { Month(index: index + Int32(n)) }
    public func distance(to other: Month) -> Int { Int(other.index - index) }
    public var next: Month { advanced(by: 1) }
    public var previous: Month { advanced(by: -1) }

    /// The first instant of the month.
    public var start: Timestamp { Timestamp(year: year, month: month, day: 1) }

    public var description: String {
        String(decoding: [UInt8](capacity: 7) { o in
            appendFourDigits(&o, year)
            o.append(UInt8(ascii: "-"))
            appendTwoDigits(&o, month)
        }, as: UTF8.self)
    }

    public init?(_ text: String) {
        let a = Array(text.utf8), b = a.span
        guard b.count == 7, b[4] == 0x2D, let y = digits(b, 0, 4), let m = digits(b, 5, 2), (1...12).contains(m) else { return nil }
        self.init(year: y, month: m)
    }
}

/// A calendar date `YYYY-MM-DD`, as days since 1970-01-01.
public struct Day: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var days: Int64
    public init(days: Int64) { self.days = days }
    public init(_ t: Timestamp) { days = t.dayNumber }
    public static func < (a: Day, b: Day) -> Bool { a.days < b.days }

    /// `YYYY-MM-DD` (years 0-9999), written into an output span.
    public func appendISO(to o: inout OutputSpan<UInt8>) {
        let (y, m, d) = CivilDate.fromDays(days)
        appendFourDigits(&o, Int(y)); o.append(UInt8(ascii: "-"))
        appendTwoDigits(&o, Int(m)); o.append(UInt8(ascii: "-"))
        appendTwoDigits(&o, Int(d))
    }

    public var description: String {
        String(decoding: [UInt8](capacity: 10) { appendISO(to: &$0) }, as: UTF8.self)
    }

    public init?(iso bytes: [UInt8]) { self.init(iso: bytes.span) }
    public init?(iso bytes: ArraySlice<UInt8>) { self.init(iso: bytes.span) }

    public init?(iso b: borrowing Span<UInt8>) {
        guard b.count == 10,
              let w0 = CivilDate.digitWord(ByteWords.load(b, 0), digits: 0x00FF_FF00_FFFF_FFFF, literal: 0x2D00_002D_0000_0000),  // YYYY-MM-
              let w1 = CivilDate.digitWord(ByteWords.load(b, 2) >> 48, digits: 0xFFFF, literal: 0),  // DD
              let day = CivilDate.dayNumber(w0, day: CivilDate.digit(w1, 0) * 10 + CivilDate.digit(w1, 1))
        else { return nil }
        days = day
    }
}

/// Money: an integer count of cents.
public typealias Cents = Int64

public enum Plan: String, Sendable, CaseIterable, Hashable, Comparable {
    case free, standard, premium, enterprise
    public static let paid: [Plan] = [.standard, .premium, .enterprise]
    public var isPaid: Bool { self != .free }
    public static func < (a: Plan, b: Plan) -> Bool { a.rank < b.rank }
    var rank: Int { switch self { case .free: 0; case .standard: 1; case .premium: 2; case .enterprise: 3 } }
}

public enum DeclineType: String, Sendable, CaseIterable, Hashable { case soft, hard }

public enum FailureReason: String, Sendable, CaseIterable, Hashable, Comparable {
    case insufficientFunds = "insufficient_funds"
    case doNotHonor = "do_not_honor"
    case genericDecline = "generic_decline"
    case cardVelocityExceeded = "card_velocity_exceeded"
    case processingError = "processing_error"
    case gatewayTimeout = "gateway_timeout"
    case authenticationRequired = "authentication_required"
    case expiredCard = "expired_card"
    case incorrectNumber = "incorrect_number"
    case stolenCard = "stolen_card"
    case fraudulent

    public var declineType: DeclineType {
        switch self {
        case .expiredCard, .incorrectNumber, .stolenCard, .fraudulent: .hard
        default: .soft
        }
    }

    /// Who can fix it (events.md's table).
    public var owner: String {
        switch self {
        case .insufficientFunds, .doNotHonor, .cardVelocityExceeded: "dunning: retry timing"
        case .genericDecline: "dunning, customer outreach"
        case .processingError, .gatewayTimeout: "engineering: gateway integration"
        case .authenticationRequired: "engineering: 3-D Secure / SCA flow"
        case .expiredCard, .incorrectNumber: "customer: card update flow"
        case .stolenCard, .fraudulent: "risk team"
        }
    }

    public static func < (a: FailureReason, b: FailureReason) -> Bool { a.rawValue < b.rawValue }
}

public enum Cancellation: String, Sendable, CaseIterable, Hashable { case voluntary, involuntary }
public enum CompanySize: String, Sendable, CaseIterable, Hashable { case smb, midMarket = "mid_market" }
public enum CancelSource: String, Sendable, CaseIterable, Hashable {
    case cancelPage = "cancel_page", downgradeFlow = "downgrade_flow", supportTicket = "support_ticket"
}
public enum PaymentMethod: String, Sendable, CaseIterable, Hashable {
    case card, sepaDebit = "sepa_debit", achDebit = "ach_debit"
}

// MARK: - Calendar arithmetic (proleptic Gregorian, Howard Hinnant's civil-from-days)

enum CivilDate {
    static func toDays(year: Int64, month: Int64, day: Int64) -> Int64 {
        let y = month <= 2 ? year - 1 : year
        let era = floorDiv(y, 400)
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// A word of a date or time: the bytes where `digits` is 0xFF must be ASCII digits, the others must equal
    /// `literal`'s. Returns each digit's value (0-9) in its byte, the other bytes zero; nil if a byte is wrong.
    @inline(__always)
    static func digitWord(_ w: UInt64, digits mask: UInt64, literal: UInt64) -> UInt64? {
        let highs = mask & ByteWords.highs
        let d = w & mask
        // A digit byte is below 0x80, at least 0x30 (adding 0x50 sets its high bit) and below 0x3A (adding
        // 0x46 does not); below 0x80, neither sum carries into the next byte.
        guard w & ~mask == literal, d & highs == 0, (d &+ (mask & 0x5050_5050_5050_5050)) & highs == highs,
              (d &+ (mask & 0x4646_4646_4646_4646)) & highs == 0
        else { return nil }
        return d &- (mask & 0x3030_3030_3030_3030)
    }

    /// The value of byte `k` of a `digitWord`.
    @inline(__always)
    static func digit(_ v: UInt64, _ k: Int) -> Int { Int(truncatingIfNeeded: v >> UInt64(8 * k)) & 0xFF }

    /// The day number of a date in 2000-2099 whose `YYYY-MM-` word `w0` `digitWord` has read, or nil if the
    /// year, month or day is out of range.
    @inline(__always)
    static func dayNumber(_ w0: UInt64, day: Int) -> Int64? {
        let year = digit(w0, 0) * 1000 + digit(w0, 1) * 100 + digit(w0, 2) * 10 + digit(w0, 3)
        let month = digit(w0, 5) * 10 + digit(w0, 6)
        let i = (year - 2000) * 12 + month - 1
        guard year >= 2000, year <= 2099, month >= 1, month <= 12, day >= 1 else { return nil }
        let starts = monthStarts
        let first = Int64(starts[i])
        guard Int64(day) <= Int64(starts[i + 1]) - first else { return nil }
        return first + Int64(day - 1)
    }

    /// The day number of the first of every month from 2000-01 to 2100-01.
    static let monthStarts: [Int32] = (0...1200).map { i in Int32(toDays(year: Int64(2000 + i / 12), month: Int64(i % 12 + 1), day: 1)) }

    /// Days 10,957 (2000-01-01) to 47,481 (2099-12-31), where events.md's timestamps lie.
    static let tableStart: Int64 = 10_957
    /// (year << 9 | month << 5 | day) of every day from `tableStart`, for the hot paths (encoding, months).
    static let table: [UInt32] = (0..<Int64(36_525)).map { i in
        let (y, m, d) = computeFromDays(tableStart + i)
        return UInt32(y) << 9 | UInt32(m) << 5 | UInt32(d)
    }

    /// (year, month, day) of a day number.
    @inline(__always)
    static func fromDays(_ z0: Int64) -> (Int64, Int64, Int64) {
        let i = z0 &- tableStart
        if i >= 0 && i < 36_525 {
            let v = table[Int(i)]
            return (Int64(v >> 9), Int64(v >> 5 & 15), Int64(v & 31))
        }
        return computeFromDays(z0)
    }

    /// Howard Hinnant's days-to-civil algorithm.
    static func computeFromDays(_ z0: Int64) -> (Int64, Int64, Int64) {
        let z = z0 + 719_468
        let era = floorDiv(z, 146_097)
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    static func daysIn(year: Int, month: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }
}

@inline(__always) func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
    let q = a / b
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
}

@inline(__always) func digits(_ b: borrowing Span<UInt8>, _ at: Int, _ n: Int) -> Int? {
    var v = 0
    for i in at..<(at + n) {
        let c = b[i]
        guard c >= 0x30 && c <= 0x39 else { return nil }
        v = v * 10 + Int(c - 0x30)
    }
    return v
}

/// Two decimal digits of `v` (0-99).
@inline(__always) func appendTwoDigits(_ o: inout OutputSpan<UInt8>, _ v: Int) {
    o.append(UInt8(truncatingIfNeeded: 0x30 + v / 10))
    o.append(UInt8(truncatingIfNeeded: 0x30 + v % 10))
}

/// Four decimal digits of `v` (0-9999): a year.
@inline(__always) func appendFourDigits(_ o: inout OutputSpan<UInt8>, _ v: Int) {
    appendTwoDigits(&o, v / 100 % 100)
    appendTwoDigits(&o, v % 100)
}
