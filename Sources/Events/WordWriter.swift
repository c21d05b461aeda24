/// The event encoder's fast path: an event's JSON written into a zero-filled region a word (eight bytes) at a
/// time instead of a byte at a time, without unsafe pointers.
///
/// Writes may store up to `slack` bytes past the position they report; the region has room for that, and
/// the next write overwrites them. Names, punctuation and type names come from a table of prepared words
/// (`Pieces`); strings are copied a word at a time while checked for the bytes JSON escapes; numbers and
/// times are assembled in registers and stored as whole words. A string that needs an escape, strings longer
/// than the region has room for, or a time outside the years 0-9999 mark the output unusable
/// (`Cursor.clean`), and the encoder writes that event again a byte at a time.
enum WordWriter {
    /// The most a write stores past the position it reports (a name written as three words).
    static let slack = 24

    /// The region an event is written in: room for everything but its strings in the longest type
    /// (`EventEncoder.fixedBytes`), the last store's slack, and 360 bytes of strings (an event with more is
    /// declined).
    static let region = 1024

    /// Where the next byte goes, whether everything so far was written exactly, the string bytes the region
    /// still has room for, and the pieces' words.
    struct Cursor {
        var at: Int
        var clean = true
        var stringRoom: Int
        let words: [UInt64]
    }

    /// Writes `event` at `start` in `m`, which has at least `region` bytes from `start`; returns the
    /// position after it, or nil when the event needs the byte-at-a-time writer.
    static func write(_ event: Event, to m: inout MutableRawSpan, at start: Int) -> Int? {
        var c = Cursor(at: start, stringRoom: region - EventEncoder.fixedBytes - slack, words: Pieces.shared.words)
        short(Pieces.Fixed.head.index, &m, &c)
        string(event.eventID, &m, &c)
        piece(Pieces.typeHead(event.type), &m, &c)
        timestamp(event.occurredAt, &m, &c)
        short(Pieces.Fixed.customer.index, &m, &c)
        string(event.customerID, &m, &c)
        switch event.payload {
        case let .customerSignedUp(plan, industry, size, country, channel):
            field(.plan, enumeration: plan.rawValue, &m, &c); field(.industry, industry, &m, &c); field(.companySize, enumeration: size.rawValue, &m, &c)
            field(.country, country, &m, &c); field(.channel, channel, &m, &c)
        case let .subscriptionStarted(sub, plan, mrr):
            field(.subscriptionID, sub, &m, &c); field(.plan, enumeration: plan.rawValue, &m, &c); field(.mrrCents, mrr, &m, &c)
        case let .subscriptionPlanChanged(sub, from, to, fromMrr, toMrr):
            field(.subscriptionID, sub, &m, &c); field(.fromPlan, enumeration: from.rawValue, &m, &c); field(.toPlan, enumeration: to.rawValue, &m, &c)
            field(.fromMrrCents, fromMrr, &m, &c); field(.toMrrCents, toMrr, &m, &c)
        case let .subscriptionCanceled(sub, plan, mrr, cancellation):
            field(.subscriptionID, sub, &m, &c); field(.plan, enumeration: plan.rawValue, &m, &c); field(.mrrCents, mrr, &m, &c)
            field(.cancellation, enumeration: cancellation.rawValue, &m, &c)
        case let .invoiceIssued(inv, sub, plan, amount, currency, periodStart, periodEnd):
            field(.invoiceID, inv, &m, &c); field(.subscriptionID, sub, &m, &c); field(.plan, enumeration: plan.rawValue, &m, &c)
            field(.amountCents, amount, &m, &c); field(.currency, currency, &m, &c)
            field(.periodStart, periodStart, &m, &c); field(.periodEnd, periodEnd, &m, &c)
        case let .invoicePaid(inv, plan, amount, currency, attempts), let .invoiceUncollectible(inv, plan, amount, currency, attempts):
            field(.invoiceID, inv, &m, &c); field(.plan, enumeration: plan.rawValue, &m, &c); field(.amountCents, amount, &m, &c)
            field(.currency, currency, &m, &c); field(.attempts, Int64(attempts), &m, &c)
        case let .paymentSucceeded(pay, inv, plan, amount, currency, attempt):
            field(.paymentID, pay, &m, &c); field(.invoiceID, inv, &m, &c); field(.plan, enumeration: plan.rawValue, &m, &c)
            field(.amountCents, amount, &m, &c); field(.currency, currency, &m, &c); field(.attempt, Int64(attempt), &m, &c)
        case let .paymentFailed(pay, inv, plan, amount, currency, attempt, reason, next):
            field(.paymentID, pay, &m, &c); field(.invoiceID, inv, &m, &c); field(.plan, enumeration: plan.rawValue, &m, &c)
            field(.amountCents, amount, &m, &c); field(.currency, currency, &m, &c); field(.attempt, Int64(attempt), &m, &c)
            field(.failureReason, enumeration: reason.rawValue, &m, &c); field(.declineType, enumeration: reason.declineType.rawValue, &m, &c)
            if let next {
                name(.nextRetryAt, &m, &c)
                store(&m, c.at, byte: 0x22)
                c.at &+= 1
                timestamp(next, &m, &c)
                store(&m, c.at, byte: 0x22)
                c.at &+= 1
            } else {
                short(Pieces.Fixed.nextRetryNull.index, &m, &c)
            }
        case let .paymentMethodUpdated(method):
            field(.paymentMethod, enumeration: method.rawValue, &m, &c)
        case let .featureUsed(feature, core, session):
            field(.feature, feature, &m, &c)
            short((core ? Pieces.Fixed.coreTrue : .coreFalse).index, &m, &c)
            field(.sessionID, session, &m, &c)
        case let .cancelIntent(source):
            field(.source, enumeration: source.rawValue, &m, &c)
        }
        store(&m, c.at, byte: UInt8(ascii: "}"))
        return c.clean ? c.at + 1 : nil
    }

    // MARK: Pieces

    /// `,"name":` and the value.
    @inline(__always)
    static func field<V: WordWritable>(_ n: FieldName, _ value: V, _ m: inout MutableRawSpan, _ c: inout Cursor) {
        name(n, &m, &c)
        value.write(to: &m, &c)
    }

    /// An enumeration's name: part of the fixed bytes, not of the room for strings.
    @inline(__always)
    static func field(_ n: FieldName, enumeration value: String, _ m: inout MutableRawSpan, _ c: inout Cursor) {
        c.stringRoom &+= value.utf8.count
        field(n, value, &m, &c)
    }

    /// `,"name":`.
    @inline(__always)
    static func name(_ f: FieldName, _ m: inout MutableRawSpan, _ c: inout Cursor) { short(Pieces.name(f), &m, &c) }

    /// A piece of at most 24 bytes (`Pieces` checks): three word stores.
    @inline(__always)
    static func short(_ index: Int, _ m: inout MutableRawSpan, _ c: inout Cursor) {
        let base = index &* Pieces.stride
        let n = Int(truncatingIfNeeded: c.words[base])
        store3(&m, c.at, c.words[base &+ 1], c.words[base &+ 2], c.words[base &+ 3])
        c.at &+= n
    }

    /// Any piece (a type's head): as many word stores as it needs.
    @inline(__always)
    static func piece(_ index: Int, _ m: inout MutableRawSpan, _ c: inout Cursor) {
        let base = index &* Pieces.stride
        let n = Int(truncatingIfNeeded: c.words[base])
        var k = 0
        while k < n {
            store(&m, c.at &+ k, c.words[base &+ 1 &+ k &>> 3])
            k &+= 8
        }
        c.at &+= n
    }

    // MARK: Values

    /// Eight bytes at `i`, little-endian: one bounds check and one store.
    @inline(__always)
    static func store(_ m: inout MutableRawSpan, _ i: Int, _ w: UInt64) {
        m.storeBytes(of: w.littleEndian, toByteOffset: i, as: UInt64.self)
    }

    @inline(__always)
    static func store(_ m: inout MutableRawSpan, _ i: Int, byte: UInt8) {
        m.storeBytes(of: byte, toByteOffset: i, as: UInt8.self)
    }

    /// Twenty-four bytes at `i`: three words.
    @inline(__always)
    static func store3(_ m: inout MutableRawSpan, _ i: Int, _ a: UInt64, _ b: UInt64, _ c: UInt64) {
        store(&m, i, a)
        store(&m, i + 8, b)
        store(&m, i + 16, c)
    }

    /// `"value"`, copied a word at a time and checked for a byte that needs escaping.
    @inline(__always)
    static func string(_ s: String, _ m: inout MutableRawSpan, _ c: inout Cursor) {
        let bytes = s.utf8.span
        let n = bytes.count
        c.stringRoom &-= n
        if c.stringRoom < 0 {
            c.clean = false
            return
        }
        store(&m, c.at, byte: 0x22)
        var k = 0
        var stops: UInt64 = 0
        while k < n {
            let w = ByteWords.loadWordOrTail(bytes, k)
            // Bytes past the end load as zero and flag as control characters; a flag is exact at the lowest
            // match and only spreads upwards, so masking off those past the end leaves only real ones.
            let valid = n &- k >= 8 ? ~UInt64(0) : (UInt64(1) &<< UInt64(8 &* (n &- k))) &- 1
            stops |= ByteWords.jsonEscapes(w) & valid
            store(&m, c.at &+ 1 &+ k, w)
            k &+= 8
        }
        store(&m, c.at &+ 1 &+ n, byte: 0x22)
        c.at &+= n &+ 2
        if stops != 0 { c.clean = false }
    }

    /// A decimal integer: up to eight digits assembled in one word, longer ones a byte at a time.
    @inline(__always)
    static func number(_ v: Int64, _ m: inout MutableRawSpan, _ c: inout Cursor) {
        if v >= 0 && v < 100_000_000 {
            var x = UInt64(v), w: UInt64 = 0, n = 0
            repeat {
                // Each digit found goes below the ones after it: the most significant ends in the lowest
                // byte, the first one written.
                w = w &<< 8 | (0x30 &+ x % 10)
                x /= 10
                n &+= 1
            } while x > 0
            store(&m, c.at, w)
            c.at &+= n
            return
        }
        if v < 0 {
            store(&m, c.at, byte: UInt8(ascii: "-"))
            c.at &+= 1
        }
        var x = v.magnitude, div: UInt64 = 1
        while div <= x / 10 { div *= 10 }
        while div > 0 {
            store(&m, c.at, byte: UInt8(truncatingIfNeeded: 0x30 + x / div))
            c.at &+= 1
            x %= div
            div /= 10
        }
    }

    /// Two ASCII digits of `v` (0-99) in the low two bytes, tens first.
    @inline(__always)
    static func twoDigits(_ v: Int64) -> UInt64 {
        let x = UInt64(truncatingIfNeeded: v)
        let t = x / 10
        return (0x30 &+ t) | (0x30 &+ x &- 10 &* t) &<< 8
    }

    /// `YYYY-MM-` as one word, for a year in 0-9999 (else the cursor is marked unusable).
    @inline(__always)
    static func yearMonth(_ y: Int64, _ month: Int64, _ c: inout Cursor) -> UInt64 {
        if y < 0 || y > 9999 { c.clean = false }
        return twoDigits(y / 100 % 100) | twoDigits(y % 100) &<< 16 | 0x2D &<< 32 | twoDigits(month) &<< 40 | 0x2D &<< 56
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ`: three words.
    @inline(__always)
    static func timestamp(_ t: Timestamp, _ m: inout MutableRawSpan, _ c: inout Cursor) {
        let days = floorDiv(t.ms, Timestamp.millisecondsPerDay)
        let rem = t.ms &- days &* Timestamp.millisecondsPerDay
        let (y, month, d) = CivilDate.fromDays(days)
        let w0 = yearMonth(y, month, &c)
        let milli = rem % 1000, seconds = rem / 1000
        let w1 = twoDigits(d) | 0x54 &<< 16 | twoDigits(seconds / 3600) &<< 24 | 0x3A &<< 40 | twoDigits(seconds / 60 % 60) &<< 48
        let hundreds = UInt64(truncatingIfNeeded: milli / 100)
        let w2 = 0x3A | twoDigits(seconds % 60) &<< 8 | 0x2E &<< 24 | (0x30 &+ hundreds) &<< 32
            | twoDigits(milli % 100) &<< 40 | 0x5A &<< 56
        store3(&m, c.at, w0, w1, w2)
        c.at &+= 24
    }

    /// `"YYYY-MM-DD"`.
    @inline(__always)
    static func day(_ value: Day, _ m: inout MutableRawSpan, _ c: inout Cursor) {
        let (y, month, d) = CivilDate.fromDays(value.days)
        let w0 = yearMonth(y, month, &c)
        store3(&m, c.at, 0x22 | w0 &<< 8, w0 &>> 56 | twoDigits(d) &<< 8 | 0x22 &<< 24, 0)
        c.at &+= 12
    }
}

/// The fixed pieces of the encoder's JSON, each kept as the words that write it: `,"name":` for every field of
/// `FieldName` (by its raw value), then the `Fixed` pieces, then `,"type":"<type>","occurred_at":"` for every
/// event type (by `EventType.ordinal`).
struct Pieces: Sendable {
    /// Pieces that are not a field's name alone.
    enum Fixed: Int, CaseIterable {
        case head, customer, nextRetryNull, coreTrue, coreFalse

        var text: String {
            switch self {
            case .head: "{\"schema\":1,\"event_id\":"
            case .customer: "\",\"customer_id\":"
            case .nextRetryNull: ",\"next_retry_at\":null"
            case .coreTrue: ",\"core_value\":true"
            case .coreFalse: ",\"core_value\":false"
            }
        }

        var index: Int { FieldName.allCases.count + rawValue }
    }

    /// Per piece: its byte count, then seven words (56 bytes at most).
    static let stride = 8
    let words: [UInt64]

    static let shared = Pieces()

    init() {
        let short = FieldName.allCases.map { ",\"\($0.wireName)\":" } + Fixed.allCases.map(\.text)
        // `WordWriter.short` writes these as three words.
        for text in short { precondition(text.utf8.count <= 24, "piece longer than three words: \(text)") }
        let texts = short + EventType.allCases.map { ",\"type\":\"\($0.rawValue)\",\"occurred_at\":\"" }
        var words: [UInt64] = []
        for text in texts {
            let bytes = Array(text.utf8)
            precondition(bytes.count <= (Self.stride - 1) * 8, "piece too long: \(text)")
            words.append(UInt64(bytes.count))
            for i in 0..<(Self.stride - 1) {
                var w: UInt64 = 0
                for (k, b) in bytes.dropFirst(8 * i).prefix(8).enumerated() { w |= UInt64(b) << UInt64(8 * k) }
                words.append(w)
            }
        }
        self.words = words
    }

    /// The index of the piece `,"name":`.
    @inline(__always)
    static func name(_ f: FieldName) -> Int { f.rawValue }

    /// The index of the piece `,"type":"<type>","occurred_at":"`.
    static func typeHead(_ type: EventType) -> Int { FieldName.allCases.count + Fixed.allCases.count + type.ordinal }
}

/// A field value the word writer writes.
protocol WordWritable {
    func write(to m: inout MutableRawSpan, _ c: inout WordWriter.Cursor)
}

extension String: WordWritable {
    @inline(__always) func write(to m: inout MutableRawSpan, _ c: inout WordWriter.Cursor) { WordWriter.string(self, &m, &c) }
}

extension Int64: WordWritable {
    @inline(__always) func write(to m: inout MutableRawSpan, _ c: inout WordWriter.Cursor) { WordWriter.number(self, &m, &c) }
}

extension Day: WordWritable {
    @inline(__always) func write(to m: inout MutableRawSpan, _ c: inout WordWriter.Cursor) { WordWriter.day(self, &m, &c) }
}
