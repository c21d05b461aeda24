/// Decodes and validates one Kafka message value against events.md.
///
/// A specialised single-pass JSON scanner: it reads the top-level object, keeps the values of the
/// fields events.md names, skips (but still checks) everything else, and then applies the validation
/// rules. It never traps on input: every failure is a `Rejection`.
public enum EventDecoder {
    public static let maxValueBytes = 64 * 1024
    /// Nesting allowed inside ignored fields before the message is rejected.
    public static let maxDepth = 32

    /// - Parameters:
    ///   - topic: the input topic the message came from (nil: accept any topic, as for archives that name it per line).
    ///   - key: the Kafka key, when present; it must equal `customer_id`.
    public static func decode(_ value: ArraySlice<UInt8>, topic: InputTopic?, key: ArraySlice<UInt8>? = nil) -> Result<Event, Rejection> {
        do throws(Rejection) {
            return .success(try decodeOrThrow(value, topic: topic, key: key))
        } catch {
            return .failure(error)
        }
    }

    public static func decode(_ value: [UInt8], topic: InputTopic?, key: [UInt8]? = nil) -> Result<Event, Rejection> {
        decode(value[...], topic: topic, key: key.map { $0[...] })
    }

    public static func decodeOrThrow(_ value: ArraySlice<UInt8>, topic: InputTopic?, key: ArraySlice<UInt8>?) throws(Rejection) -> Event {
        guard value.count <= maxValueBytes else {
            throw Rejection(.tooLarge, "value is \(value.count) bytes, more than \(maxValueBytes)")
        }
        // The fields are scanned into the validator's own storage: copying them costs 792 bytes per message.
        var validator = Validator(input: value)
        try scanObject(value.span, base: value.startIndex, into: &validator.fields)
        return try validator.event(topic: topic, key: key)
    }
}

// MARK: - Field names events.md defines

enum FieldName: Int, CaseIterable {
    case schema, eventID, type, occurredAt, customerID
    case plan, industry, companySize, country, channel, subscriptionID, mrrCents, fromPlan, toPlan
    case fromMrrCents, toMrrCents, cancellation, invoiceID, amountCents, currency, periodStart, periodEnd
    case attempts, paymentID, attempt, failureReason, declineType, nextRetryAt, paymentMethod
    case feature, coreValue, sessionID, source

    var wireName: String {
        switch self {
        case .schema: "schema"
        case .eventID: "event_id"
        case .type: "type"
        case .occurredAt: "occurred_at"
        case .customerID: "customer_id"
        case .plan: "plan"
        case .industry: "industry"
        case .companySize: "company_size"
        case .country: "country"
        case .channel: "channel"
        case .subscriptionID: "subscription_id"
        case .mrrCents: "mrr_cents"
        case .fromPlan: "from_plan"
        case .toPlan: "to_plan"
        case .fromMrrCents: "from_mrr_cents"
        case .toMrrCents: "to_mrr_cents"
        case .cancellation: "cancellation"
        case .invoiceID: "invoice_id"
        case .amountCents: "amount_cents"
        case .currency: "currency"
        case .periodStart: "period_start"
        case .periodEnd: "period_end"
        case .attempts: "attempts"
        case .paymentID: "payment_id"
        case .attempt: "attempt"
        case .failureReason: "failure_reason"
        case .declineType: "decline_type"
        case .nextRetryAt: "next_retry_at"
        case .paymentMethod: "payment_method"
        case .feature: "feature"
        case .coreValue: "core_value"
        case .sessionID: "session_id"
        case .source: "source"
        }
    }

    /// A perfect-hash table from a key's bytes to its field, built once.
    static let table: FieldTable = FieldTable()
}

/// From a key's bytes to its field, without copying them: every field name of events.md fits in 16 bytes,
/// so a name is compared as two little-endian words, found in the one slot their mix names.
struct FieldTable: Sendable {
    static let size = 128
    /// The field whose name hashes to each slot (-1: none).
    private var slots = [Int8](repeating: -1, count: FieldTable.size)
    /// Chosen so that no two names share a slot: a lookup reads one slot (a perfect hash).
    private var seed: UInt64 = 0
    /// Each field's name as two words, the masks of its bytes in them and its length (indexed by
    /// `FieldName.rawValue`): what a lookup and `matchesName` compare a key with.
    private struct Name {
        var w0: UInt64, w1: UInt64, m0: UInt64, m1: UInt64, length: Int
    }
    private let nameWords: [Name]
    /// The field that most likely follows each field (-1: none), as `EventEncoder` orders them, for the event
    /// types the simulator makes most of. Only speed depends on it: a wrong guess costs one comparison.
    let predictedNext: [Int]

    private static let successors: [(FieldName, FieldName)] = [
        (.schema, .eventID), (.eventID, .type), (.type, .occurredAt), (.occurredAt, .customerID), (.customerID, .feature),
        (.feature, .coreValue), (.coreValue, .sessionID),
        (.paymentID, .invoiceID), (.invoiceID, .plan), (.subscriptionID, .plan), (.plan, .amountCents),
        (.amountCents, .currency), (.currency, .attempt), (.attempt, .failureReason), (.failureReason, .declineType),
        (.declineType, .nextRetryAt), (.periodStart, .periodEnd), (.mrrCents, .cancellation),
        (.industry, .companySize), (.companySize, .country), (.country, .channel),
        (.fromPlan, .toPlan), (.toPlan, .fromMrrCents), (.fromMrrCents, .toMrrCents),
    ]

    init() {
        precondition(FieldName.allCases.count == Fields().values.count, "Fields.values holds one value per field name")
        let names = FieldName.allCases.map { Array($0.wireName.utf8) }
        precondition(names.allSatisfy { $0.count <= 15 }, "field names are at most 15 bytes (see scanKey)")
        nameWords = names.map { name in
            let (w0, w1) = Self.words(name.span, 0..<name.count)
            let n = name.count
            return Name(w0: w0, w1: w1, m0: n >= 8 ? ~0 : (1 << UInt64(8 * n)) &- 1,
                        m1: n <= 8 ? 0 : (1 << UInt64(8 * (n - 8))) &- 1, length: n)
        }
        // About one seed in 60 puts 33 names in 128 slots without a collision.
        seeds: for candidate in UInt64(1)... {
            var table = [Int8](repeating: -1, count: Self.size)
            for (f, name) in nameWords.enumerated() {
                let i = Self.slot(name.w0, name.w1, name.length, seed: candidate)
                guard table[i] < 0 else { continue seeds }
                table[i] = Int8(f)
            }
            slots = table
            seed = candidate
            break
        }
        var next = [Int](repeating: -1, count: FieldName.allCases.count)
        for (a, b) in Self.successors { next[a.rawValue] = b.rawValue }
        predictedNext = next
    }

    /// Whether the quote at `quote` opens a key that is exactly `field`'s name: its bytes compared as two
    /// masked words, and a closing quote after them (names hold no quote or backslash, so nothing else can
    /// be read that way). Returns the position of the closing quote. Needs 16 bytes after the quote, as
    /// `scanKey` does; nil when they are not there.
    @inline(__always)
    func matchesName(_ s: borrowing Span<UInt8>, _ quote: Int, _ field: Int) -> Int? {
        let start = quote + 1
        guard start + 16 <= s.count else { return nil }
        let name = nameWords[field]
        guard ByteWords.load(s, start) & name.m0 == name.w0, ByteWords.load(s, start + 8) & name.m1 == name.w1,
              s[start + name.length] == 0x22 else { return nil }
        return start + name.length
    }

    /// A name of at most 16 bytes as two little-endian words, zero above its bytes.
    @inline(__always) private static func words(_ s: borrowing Span<UInt8>, _ range: Range<Int>) -> (UInt64, UInt64) {
        let n = range.count
        return (ByteWords.loadPartial(s, range.lowerBound, min(n, 8)), n > 8 ? ByteWords.loadPartial(s, range.lowerBound + 8, n - 8) : 0)
    }

    @inline(__always) private static func slot(_ w0: UInt64, _ w1: UInt64, _ count: Int, seed: UInt64) -> Int {
        var z = w0 &* 0x9E37_79B9_7F4A_7C15 ^ w1 &* 0xC2B2_AE3D_27D4_EB4F ^ UInt64(count) ^ seed &* 0xD6E8_FEB8_6659_FD93
        z ^= z >> 29
        z = z &* 0xBF58_476D_1CE4_E5B9
        return Int(truncatingIfNeeded: z >> 32) & (Self.size - 1)
    }

    /// The field whose name is `s[range]`.
    func lookup(_ s: borrowing Span<UInt8>, _ range: Range<Int>) -> Int? {
        let n = range.count
        guard n <= 16 else { return nil }
        // Whole words masked to the name's length (keys are followed by at least `":` and a value).
        let (w0, w1) = Self.words(s, range)
        return lookup(w0, w1, n)
    }

    /// A key read straight from the input, for the common case: the quote at `quote` opens a key of at most
    /// 15 plain bytes (no escape, control or non-ASCII byte; events.md's longest name has 15), so that its
    /// closing quote lies within the 16 bytes after it. Returns the key's range and its field (nil: not a name of events.md), or nil when the key
    /// is not of that kind (the caller then scans it the general way).
    @inline(__always)
    func scanKey(_ s: borrowing Span<UInt8>, _ quote: Int) -> (range: Range<Int>, field: Int?)? {
        let start = quote + 1
        guard start + 16 <= s.count else { return nil }
        var w0 = ByteWords.load(s, start)
        var w1 = ByteWords.load(s, start + 8)
        let m0 = ByteWords.jsonStringStops(w0)
        let n: Int
        if m0 != 0 {
            n = m0.trailingZeroBitCount >> 3
            w0 &= n == 0 ? 0 : (1 << UInt64(n * 8)) &- 1
            w1 = 0
        } else {
            let m1 = ByteWords.jsonStringStops(w1)
            guard m1 != 0 else { return nil }
            n = 8 + m1.trailingZeroBitCount >> 3
            w1 &= n == 8 ? 0 : (1 << UInt64((n - 8) * 8)) &- 1
        }
        guard s[start + n] == 0x22 else { return nil }
        return (start..<(start + n), lookup(w0, w1, n))
    }

    @inline(__always)
    private func lookup(_ w0: UInt64, _ w1: UInt64, _ n: Int) -> Int? {
        let f = Int(slots[Self.slot(w0, w1, n, seed: seed)])
        guard f >= 0 else { return nil }
        let name = nameWords[f]
        return name.w0 == w0 && name.w1 == w1 && name.length == n ? f : nil
    }
}

/// A scanned JSON value. Strings are kept as positions in the input.
enum ScannedValue {
    case string(Range<Int>, escaped: Bool)
    /// An integer written without sign, fraction or exponent, at most 2^53.
    case integer(Int64)
    /// Any other number (negative, fractional, exponent, too large).
    case otherNumber
    case bool(Bool)
    case null
    case composite
}

struct Fields {
    /// Kept inline (no allocation per message); indexed by `FieldName.rawValue`. Written as a literal:
    /// `InlineArray(repeating: nil)` built a temporary and copied it, about 130 instructions a message.
    var values: InlineArray<33, ScannedValue?> = [nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil,
                                                  nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil]
    var seen: UInt64 = 0
    var unknownKeys: Set<[UInt8]> = []
}

// MARK: - Scanner

private let maxSafeInteger: Int64 = 1 << 53

@inline(__always) private func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 }

@inline(__always) private func skipSpace(_ s: borrowing Span<UInt8>, _ pos: inout Int) {
    while pos < s.count && isSpace(s[pos]) { pos += 1 }
}

private func invalid(_ what: String, _ pos: Int) -> Rejection {
    Rejection(.invalidJSON, "\(what) at byte \(pos)")
}

private func scanObject(_ s: borrowing Span<UInt8>, base: Int, into fields: inout Fields) throws(Rejection) {
    let table = FieldName.table
    var predicted = FieldName.schema.rawValue
    var pos = 0
    skipSpace(s, &pos)
    guard pos < s.count else { throw Rejection(.invalidJSON, "empty value") }
    guard s[pos] == UInt8(ascii: "{") else {
        // Distinguish "valid JSON, but not an object" from garbage.
        let c = s[pos]
        if c == UInt8(ascii: "[") || c == UInt8(ascii: "\"") || c == UInt8(ascii: "t") || c == UInt8(ascii: "f")
            || c == UInt8(ascii: "n") || c == UInt8(ascii: "-") || (c >= 0x30 && c <= 0x39) {
            throw Rejection(.notAnObject, "the value is not a JSON object")
        }
        throw invalid("expected '{'", pos)
    }
    pos += 1
    skipSpace(s, &pos)
    if pos < s.count && s[pos] == UInt8(ascii: "}") {
        pos += 1
    } else {
        while true {
            skipSpace(s, &pos)
            guard pos < s.count, s[pos] == 0x22 else { throw invalid("expected a key", pos) }
            let keyRange: Range<Int>
            var keyEscaped = false
            var known: Int?? = nil
            if predicted >= 0, let close = table.matchesName(s, pos, predicted) {
                // The field the encoder writes next, as expected.
                keyRange = (pos + 1)..<close
                known = .some(predicted)
                pos = close + 1
            } else if let (range, field) = table.scanKey(s, pos) {
                keyRange = range
                known = .some(field)
                pos = range.upperBound + 1
            } else {
                (keyRange, keyEscaped) = try scanString(s, &pos)
            }
            skipSpace(s, &pos)
            guard pos < s.count, s[pos] == UInt8(ascii: ":") else { throw invalid("expected ':'", pos) }
            pos += 1
            skipSpace(s, &pos)
            // The common case here rather than in `scanValue` and `record`: a string value, a key events.md
            // names. (As calls, they cost about 90 instructions a field in passing arguments and saving registers.)
            let value: ScannedValue
            if pos < s.count && s[pos] == 0x22 {
                let (range, escaped) = try scanStringQuickly(s, &pos)
                value = .string(range, escaped: escaped)
            } else {
                value = try scanValue(s, &pos, depth: 1)
            }
            if case let .some(.some(field)) = known {
                try store(field, value, into: &fields)
                predicted = table.predictedNext[field]
            } else {
                try record(s, base: base, keyRange: keyRange, keyEscaped: keyEscaped, known: known, value: value, into: &fields)
            }
            skipSpace(s, &pos)
            guard pos < s.count else { throw invalid("unterminated object", pos) }
            if s[pos] == UInt8(ascii: ",") { pos += 1; continue }
            if s[pos] == UInt8(ascii: "}") { pos += 1; break }
            throw invalid("expected ',' or '}'", pos)
        }
    }
    skipSpace(s, &pos)
    guard pos == s.count else { throw invalid("trailing bytes after the object", pos) }
}

/// `known`: the key's field when the caller already looked it up (`.some(nil)`: not a field of events.md).
private func record(_ s: borrowing Span<UInt8>, base: Int, keyRange: Range<Int>, keyEscaped: Bool, known: Int??, value: ScannedValue,
                    into fields: inout Fields) throws(Rejection) {
    // A key written with escapes (rare) is resolved first; it can still name a known field.
    let field: Int?
    if let known {
        field = known
    } else if keyEscaped {
        field = FieldName.allCases.first { Array($0.wireName.utf8) == (try? unescapedKey(s, keyRange)) }?.rawValue
    } else {
        field = FieldName.table.lookup(s, keyRange)
    }
    if let field {
        try store(field, value, into: &fields)
        return
    }
    // Unknown keys (rare) are kept to catch repeats. (No key array is made on the common path above: even an
    // empty one cost a retain and a release per key.)
    let key = keyEscaped ? try unescapedKey(s, keyRange) : bytes(s.extracting(keyRange))
    if !fields.unknownKeys.insert(key).inserted {
        throw Rejection(.repeatedKey, "key \"\(printable(key))\" appears twice")
    }
}

/// Keeps a known field's value; a field seen before is a repeated key.
@inline(__always)
private func store(_ field: Int, _ value: ScannedValue, into fields: inout Fields) throws(Rejection) {
    let bit: UInt64 = 1 << UInt64(field)
    if fields.seen & bit != 0 {
        throw Rejection(.repeatedKey, "key \"\(FieldName(rawValue: field)!.wireName)\" appears twice")
    }
    fields.seen |= bit
    fields.values[field] = value
}

/// A key's bytes with its escapes resolved.
private func unescapedKey(_ s: borrowing Span<UInt8>, _ keyRange: Range<Int>) throws(Rejection) -> [UInt8] {
    try unescapeSlice(bytes(s.extracting(keyRange))[...])
}

/// `scanString` for the common case: a string of plain bytes (no escape, control or non-ASCII byte),
/// eight at a time, the last ones read from the input's last eight bytes. At any other byte it hands over to
/// `scanString`, which starts again at the opening quote.
@inline(__always)
private func scanStringQuickly(_ s: borrowing Span<UInt8>, _ pos: inout Int) throws(Rejection) -> (Range<Int>, Bool) {
    let start = pos + 1
    let n = s.count
    var p = start
    while true {
        let w: UInt64
        if p + 8 <= n {
            w = ByteWords.load(s, p)
        } else if p < n && n >= 8 {
            // The zeros shifted in above the input's end count as control bytes, so they stop the scan.
            w = ByteWords.load(s, n - 8) >> UInt64(8 * (8 - (n - p)))
        } else {
            break
        }
        let special = ByteWords.jsonStringStops(w)
        if special == 0 {
            p += 8
            continue
        }
        p += special.trailingZeroBitCount >> 3
        if p < n && s[p] == 0x22 {
            pos = p + 1
            return (start..<p, false)
        }
        break
    }
    return try scanString(s, &pos)
}

/// Scans a string starting at its opening quote; returns the range of its content (without quotes).
private func scanString(_ s: borrowing Span<UInt8>, _ pos: inout Int) throws(Rejection) -> (Range<Int>, Bool) {
    pos += 1
    let start = pos
    var escaped = false
    while pos < s.count {
        // Eight plain bytes (no quote, backslash, control character or non-ASCII byte) at a time; at the
        // first other byte, fall through to handle it alone.
        if pos + 8 <= s.count {
            let w = ByteWords.load(s, pos)
            let special = ByteWords.jsonStringStops(w)
            if special == 0 {
                pos += 8
                continue
            }
            pos += special.trailingZeroBitCount >> 3
        }
        let c = s[pos]
        if c == 0x22 {
            let range = start..<pos
            pos += 1
            return (range, escaped)
        }
        if c == 0x5C {
            escaped = true
            guard pos + 1 < s.count else { break }
            let e = s[pos + 1]
            switch e {
            case 0x22, 0x5C, 0x2F, UInt8(ascii: "b"), UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                pos += 2
            case UInt8(ascii: "u"):
                guard pos + 5 < s.count else { throw invalid("truncated \\u escape", pos) }
                for i in 2...5 where hexValue(s[pos + i]) == nil { throw invalid("bad \\u escape", pos) }
                pos += 6
            default:
                throw invalid("bad escape", pos)
            }
            continue
        }
        if c < 0x20 { throw invalid("control character in a string", pos) }
        if c < 0x80 { pos += 1; continue }
        pos = try validateUTF8Sequence(s, pos)
    }
    throw invalid("unterminated string", pos)
}

/// Checks one multi-byte UTF-8 sequence at `pos`; returns the position after it.
private func validateUTF8Sequence(_ s: borrowing Span<UInt8>, _ pos: Int) throws(Rejection) -> Int {
    let c = s[pos]
    var need = 0
    var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
    switch c {
    case 0xC2...0xDF: need = 1
    case 0xE0: need = 2; lo = 0xA0
    case 0xE1...0xEC, 0xEE, 0xEF: need = 2
    case 0xED: need = 2; hi = 0x9F
    case 0xF0: need = 3; lo = 0x90
    case 0xF1...0xF3: need = 3
    case 0xF4: need = 3; hi = 0x8F
    default: throw Rejection(.invalidUTF8, "invalid UTF-8 byte 0x\(String(c, radix: 16)) at byte \(pos)")
    }
    guard pos + need < s.count else { throw Rejection(.invalidUTF8, "truncated UTF-8 sequence at byte \(pos)") }
    let first = s[pos + 1]
    guard first >= lo && first <= hi else { throw Rejection(.invalidUTF8, "invalid UTF-8 sequence at byte \(pos)") }
    var i = 2
    while i <= need {
        let cc = s[pos + i]
        guard cc & 0xC0 == 0x80 else { throw Rejection(.invalidUTF8, "invalid UTF-8 sequence at byte \(pos)") }
        i += 1
    }
    return pos + need + 1
}

@inline(__always) private func hexValue(_ c: UInt8) -> UInt32? {
    switch c {
    case 0x30...0x39: UInt32(c - 0x30)
    case 0x41...0x46: UInt32(c - 0x41 + 10)
    case 0x61...0x66: UInt32(c - 0x61 + 10)
    default: nil
    }
}

private func scanValue(_ s: borrowing Span<UInt8>, _ pos: inout Int, depth: Int) throws(Rejection) -> ScannedValue {
    guard pos < s.count else { throw invalid("expected a value", pos) }
    let c = s[pos]
    switch c {
    case 0x22:
        let (range, escaped) = try scanString(s, &pos)
        return .string(range, escaped: escaped)
    case UInt8(ascii: "t"):
        try literal(s, &pos, Literal.trueWord, 4)
        return .bool(true)
    case UInt8(ascii: "f"):
        try literal(s, &pos, Literal.falseWord, 5)
        return .bool(false)
    case UInt8(ascii: "n"):
        try literal(s, &pos, Literal.nullWord, 4)
        return .null
    case UInt8(ascii: "-"), 0x30...0x39:
        return try scanNumber(s, &pos)
    case UInt8(ascii: "{"), UInt8(ascii: "["):
        try skipComposite(s, &pos, depth: depth)
        return .composite
    default:
        throw invalid("unexpected character", pos)
    }
}

/// The literals `true`, `false` and `null` as little-endian words.
private enum Literal {
    static let trueWord: UInt64 = 0x6575_7274, falseWord: UInt64 = 0x65_736C_6166, nullWord: UInt64 = 0x6C6C_756E
}

/// Reads the `n`-byte literal whose bytes are `word`'s (little-endian): compared in one word when eight bytes
/// remain, else byte by byte.
private func literal(_ s: borrowing Span<UInt8>, _ pos: inout Int, _ word: UInt64, _ n: Int) throws(Rejection) {
    guard pos + n <= s.count else { throw invalid("truncated literal", pos) }
    let actual = pos + 8 <= s.count ? ByteWords.load(s, pos) & ((1 << UInt64(8 * n)) &- 1) : ByteWords.loadPartial(s, pos, n)
    guard actual == word else { throw invalid("bad literal", pos) }
    pos += n
}

private func scanNumber(_ s: borrowing Span<UInt8>, _ pos: inout Int) throws(Rejection) -> ScannedValue {
    let start = pos
    var conforming = true
    if s[pos] == UInt8(ascii: "-") { conforming = false; pos += 1 }
    guard pos < s.count, s[pos] >= 0x30 && s[pos] <= 0x39 else { throw invalid("bad number", start) }
    var value: Int64 = 0
    if s[pos] == 0x30 {
        pos += 1
        if pos < s.count && s[pos] >= 0x30 && s[pos] <= 0x39 { throw invalid("leading zero in a number", start) }
    } else {
        while pos < s.count && s[pos] >= 0x30 && s[pos] <= 0x39 {
            if value <= maxSafeInteger { value = value * 10 + Int64(s[pos] - 0x30) }
            pos += 1
        }
    }
    if pos < s.count && s[pos] == UInt8(ascii: ".") {
        conforming = false
        pos += 1
        guard pos < s.count, s[pos] >= 0x30 && s[pos] <= 0x39 else { throw invalid("bad fraction", start) }
        while pos < s.count && s[pos] >= 0x30 && s[pos] <= 0x39 { pos += 1 }
    }
    if pos < s.count && (s[pos] == UInt8(ascii: "e") || s[pos] == UInt8(ascii: "E")) {
        conforming = false
        pos += 1
        if pos < s.count && (s[pos] == UInt8(ascii: "+") || s[pos] == UInt8(ascii: "-")) { pos += 1 }
        guard pos < s.count, s[pos] >= 0x30 && s[pos] <= 0x39 else { throw invalid("bad exponent", start) }
        while pos < s.count && s[pos] >= 0x30 && s[pos] <= 0x39 { pos += 1 }
    }
    if conforming && value <= maxSafeInteger { return .integer(value) }
    return .otherNumber
}

/// Skips an object or array, checking its syntax, iteratively with a depth limit.
private func skipComposite(_ s: borrowing Span<UInt8>, _ pos: inout Int, depth: Int) throws(Rejection) {
    var stack: [Bool] = []  // open containers, true = object
    try openContainer(s, &pos, &stack, depth: depth)
    var atStart = true      // just after '{' or '[': an immediate close is allowed
    while true {
        skipSpace(s, &pos)
        guard pos < s.count else { throw invalid("unterminated container", pos) }
        if atStart {
            atStart = false
            let isObject = stack[stack.count - 1]
            if s[pos] == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) {
                pos += 1
                stack.removeLast()
                if stack.isEmpty { return }
                try afterValue(s, &pos, &stack)
                if stack.isEmpty { return }
                continue
            }
            if isObject {
                try memberKey(s, &pos)
                skipSpace(s, &pos)
                guard pos < s.count else { throw invalid("expected a value", pos) }
            }
        }
        if s[pos] == UInt8(ascii: "{") || s[pos] == UInt8(ascii: "[") {
            try openContainer(s, &pos, &stack, depth: depth)
            atStart = true
            continue
        }
        _ = try scanValue(s, &pos, depth: depth + stack.count)
        try afterValue(s, &pos, &stack)
        if stack.isEmpty { return }
    }
}

private func openContainer(_ s: borrowing Span<UInt8>, _ pos: inout Int, _ stack: inout [Bool], depth: Int) throws(Rejection) {
    stack.append(s[pos] == UInt8(ascii: "{"))
    guard depth + stack.count <= EventDecoder.maxDepth else {
        throw Rejection(.invalidJSON, "nested deeper than \(EventDecoder.maxDepth) levels")
    }
    pos += 1
}

/// In an object, reads `"key":` before a member's value.
private func memberKey(_ s: borrowing Span<UInt8>, _ pos: inout Int) throws(Rejection) {
    skipSpace(s, &pos)
    guard pos < s.count, s[pos] == 0x22 else { throw invalid("expected a key", pos) }
    _ = try scanString(s, &pos)
    skipSpace(s, &pos)
    guard pos < s.count, s[pos] == UInt8(ascii: ":") else { throw invalid("expected ':'", pos) }
    pos += 1
}

/// After a value: ',' (and in an object the next key), or closing brackets, possibly several.
private func afterValue(_ s: borrowing Span<UInt8>, _ pos: inout Int, _ stack: inout [Bool]) throws(Rejection) {
    while true {
        skipSpace(s, &pos)
        guard pos < s.count else { throw invalid("unterminated container", pos) }
        let isObject = stack[stack.count - 1]
        let c = s[pos]
        if c == UInt8(ascii: ",") {
            pos += 1
            if isObject { try memberKey(s, &pos) }
            return
        }
        guard c == (isObject ? UInt8(ascii: "}") : UInt8(ascii: "]")) else {
            throw invalid("expected ',' or a closing bracket", pos)
        }
        pos += 1
        stack.removeLast()
        if stack.isEmpty { return }
    }
}

func printable(_ bytes: [UInt8]) -> String {
    let text = String(decoding: bytes.prefix(64), as: UTF8.self)
    return String(text.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? "?" : Character($0) })
}
