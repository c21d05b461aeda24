/// Applies events.md's validation rules to the scanned fields and builds the `Event`.
///
/// Its readers are `mutating` though they change nothing: `fields.values` is a 792-byte `InlineArray`, and
/// reading one element of it through a borrowed `self` compiled to a copy of the whole array (a `memcpy` per
/// field read, about 730 instructions a message); through `inout self` it is read in place.
struct Validator {
    let input: ArraySlice<UInt8>
    var fields = Fields()

    init(input: ArraySlice<UInt8>) {
        self.input = input
    }

    mutating func event(topic: InputTopic?, key: ArraySlice<UInt8>?) throws(Rejection) -> Event {
        guard case .integer(1)? = fields.values[FieldName.schema.rawValue] else {
            if fields.values[FieldName.schema.rawValue] == nil { throw Rejection(.missingField, "schema") }
            throw Rejection(.unsupportedSchema, "schema must be the integer 1")
        }
        let type = try eventType()
        if let topic, type.topic != topic {
            throw Rejection(.wrongTopic, "\(type.rawValue) belongs on topic \(type.topic.rawValue), not \(topic.rawValue)")
        }
        let eventID = try identifier(.eventID, maxBytes: 128)
        let customer = try identifierContent(.customerID, maxBytes: 64)
        if let key {
            let matches = try withBytes(customer) { b in ByteWords.equal(b, key.span) }
            if !matches {
                throw Rejection(.keyMismatch, "Kafka key \"\(printable(Array(key.prefix(64))))\" is not customer_id \"\(string(customer))\"")
            }
        }
        let customerID = string(customer, ascii: true)
        let occurredAt = try time(.occurredAt)
        return Event(eventID: eventID, occurredAt: occurredAt, customerID: customerID, payload: try payload(type))
    }

    private mutating func eventType() throws(Rejection) -> EventType {
        if case let .string(r, false)? = fields.values[FieldName.type.rawValue],
           let type = WireTables.eventType.match(input.span.extracting(r)) { return type }
        return try withBytes(.type) { (b) throws(Rejection) -> EventType in
            guard let type = WireTables.eventType.match(b) else {
                throw Rejection(.unknownType, "unknown type \"\(printable(leadingBytes(b)))\"")
            }
            return type
        }
    }

    private mutating func payload(_ type: EventType) throws(Rejection) -> Event.Payload {
        switch type {
        case .customerSignedUp:
            return .customerSignedUp(plan: try enumeration(.plan, WireTables.plan), industry: try text(.industry),
                                     companySize: try enumeration(.companySize, WireTables.companySize), country: try text(.country),
                                     channel: try text(.channel))
        case .subscriptionStarted:
            return .subscriptionStarted(subscriptionID: try text(.subscriptionID), plan: try enumeration(.plan, WireTables.plan),
                                        mrrCents: try integer(.mrrCents))
        case .subscriptionPlanChanged:
            return .subscriptionPlanChanged(subscriptionID: try text(.subscriptionID), fromPlan: try enumeration(.fromPlan, WireTables.plan),
                                            toPlan: try enumeration(.toPlan, WireTables.plan), fromMrrCents: try integer(.fromMrrCents),
                                            toMrrCents: try integer(.toMrrCents))
        case .subscriptionCanceled:
            return .subscriptionCanceled(subscriptionID: try text(.subscriptionID), plan: try enumeration(.plan, WireTables.plan),
                                         mrrCents: try integer(.mrrCents), cancellation: try enumeration(.cancellation, WireTables.cancellation))
        case .invoiceIssued:
            return .invoiceIssued(invoiceID: try text(.invoiceID), subscriptionID: try text(.subscriptionID),
                                  plan: try enumeration(.plan, WireTables.plan), amountCents: try integer(.amountCents),
                                  currency: try text(.currency), periodStart: try day(.periodStart), periodEnd: try day(.periodEnd))
        case .invoicePaid:
            return .invoicePaid(invoiceID: try text(.invoiceID), plan: try enumeration(.plan, WireTables.plan), amountCents: try integer(.amountCents),
                                currency: try text(.currency), attempts: try count(.attempts))
        case .invoiceUncollectible:
            return .invoiceUncollectible(invoiceID: try text(.invoiceID), plan: try enumeration(.plan, WireTables.plan),
                                         amountCents: try integer(.amountCents), currency: try text(.currency),
                                         attempts: try count(.attempts))
        case .paymentSucceeded:
            return .paymentSucceeded(paymentID: try text(.paymentID), invoiceID: try text(.invoiceID), plan: try enumeration(.plan, WireTables.plan),
                                     amountCents: try integer(.amountCents), currency: try text(.currency),
                                     attempt: try count(.attempt))
        case .paymentFailed:
            let reason: FailureReason = try enumeration(.failureReason, WireTables.failureReason)
            let decline: DeclineType = try enumeration(.declineType, WireTables.declineType)
            guard reason.declineType == decline else {
                throw Rejection(.invalidValue, "decline_type \"\(decline.rawValue)\" does not match failure_reason \"\(reason.rawValue)\" (\(reason.declineType.rawValue))")
            }
            let next: Timestamp?
            switch fields.values[FieldName.nextRetryAt.rawValue] {
            case nil: throw Rejection(.missingField, "next_retry_at")
            case .null?: next = nil
            default: next = try time(.nextRetryAt)
            }
            return .paymentFailed(paymentID: try text(.paymentID), invoiceID: try text(.invoiceID), plan: try enumeration(.plan, WireTables.plan),
                                  amountCents: try integer(.amountCents), currency: try text(.currency),
                                  attempt: try count(.attempt), failureReason: reason, nextRetryAt: next)
        case .paymentMethodUpdated:
            return .paymentMethodUpdated(paymentMethod: try enumeration(.paymentMethod, WireTables.paymentMethod))
        case .featureUsed:
            guard let v = fields.values[FieldName.coreValue.rawValue] else { throw Rejection(.missingField, "core_value") }
            guard case let .bool(core) = v else { throw Rejection(.wrongType, "core_value must be true or false") }
            return .featureUsed(feature: try text(.feature), coreValue: core, sessionID: try text(.sessionID))
        case .cancelIntent:
            return .cancelIntent(source: try enumeration(.source, WireTables.cancelSource))
        }
    }

    // MARK: Field readers

    private mutating func value(_ f: FieldName) throws(Rejection) -> ScannedValue {
        guard let v = fields.values[f.rawValue] else { throw Rejection(.missingField, f.wireName) }
        return v
    }

    /// A string field's content: where it lies in the input when written without escapes (nearly always),
    /// else its unescaped copy.
    private enum Content {
        case raw(Range<Int>)
        case unescaped([UInt8])
    }

    private mutating func content(_ f: FieldName) throws(Rejection) -> Content {
        guard case let .string(range, escaped) = try value(f) else {
            throw Rejection(.wrongType, "\(f.wireName) must be a string")
        }
        guard escaped else { return .raw(range) }
        let base = input.startIndex
        return .unescaped(try unescapeSlice(input[(base + range.lowerBound)..<(base + range.upperBound)]))
    }

    /// Calls `body` with the content's bytes, escapes resolved, without copying them out of the input.
    private mutating func withBytes<R>(_ c: Content, _ body: (borrowing Span<UInt8>) throws(Rejection) -> R) throws(Rejection) -> R {
        switch c {
        case let .raw(r): return try body(input.span.extracting(r))
        case let .unescaped(u): return try body(u.span)
        }
    }

    private mutating func withBytes<R>(_ f: FieldName, _ body: (borrowing Span<UInt8>) throws(Rejection) -> R) throws(Rejection) -> R {
        try withBytes(try content(f), body)
    }

    /// The content as a `String`. `ascii`: the caller has just checked every byte of it to be ASCII, so the
    /// bytes are made a string without validating them again (UTF-8 validation, then an ASCII scan, cost
    /// about 60 instructions a string, five strings a message).
    private mutating func string(_ c: Content, ascii: Bool = false) -> String {
        switch c {
        case let .raw(r):
            let b = input.span.extracting(r)
            if ascii { return String(copying: unsafe UTF8Span(unchecked: b, isKnownASCII: true)) }
            // From the input's span: slicing `input` retained and released its storage per string. The scanner
            // has already rejected invalid UTF-8, so the fallback below is never taken; it is there so that a
            // mistake in the scanner gives repaired text instead of a crash.
            if let text = try? UTF8Span(validating: b) { return String(copying: text) }
            let base = input.startIndex
            return String(decoding: input[(base + r.lowerBound)..<(base + r.upperBound)], as: UTF8.self)
        case let .unescaped(u):
            return String(decoding: u, as: UTF8.self)
        }
    }

    /// `event_id` and `customer_id`: 1 to `maxBytes` bytes of `A-Z a-z 0-9 _ - . :`.
    private mutating func identifier(_ f: FieldName, maxBytes: Int) throws(Rejection) -> String {
        string(try identifierContent(f, maxBytes: maxBytes), ascii: true)
    }

    private mutating func identifierContent(_ f: FieldName, maxBytes: Int) throws(Rejection) -> Content {
        // Written without escapes (nearly always): checked in the input, with no closure or content to pass.
        if case let .string(r, false)? = fields.values[f.rawValue] {
            try Self.checkIdentifier(input.span.extracting(r), f, maxBytes: maxBytes)
            return .raw(r)
        }
        let c = try content(f)
        try withBytes(c) { (b) throws(Rejection) in try Self.checkIdentifier(b, f, maxBytes: maxBytes) }
        return c
    }

    @inline(__always)
    private static func checkIdentifier(_ b: borrowing Span<UInt8>, _ f: FieldName, maxBytes: Int) throws(Rejection) {
        guard b.count >= 1, b.count <= maxBytes else {
            throw Rejection(.invalidValue, "\(f.wireName) must be 1 to \(maxBytes) bytes, got \(b.count)")
        }
        // Eight bytes at a time, the last eight (overlapping the word before) in one more word.
        var i = 0
        while i + 8 <= b.count && ByteWords.allIdentifierBytes(ByteWords.load(b, i)) { i += 8 }
        // (Only when the loop ran out of whole words: a word that failed is looked at byte by byte below.)
        if i < b.count && i + 8 > b.count && i >= 8 && ByteWords.allIdentifierBytes(ByteWords.load(b, b.count - 8)) { i = b.count }
        while i < b.count {
            let c = b[i]
            i += 1
            let ok = (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x5A) || (c >= 0x61 && c <= 0x7A)
                || c == 0x5F || c == 0x2D || c == 0x2E || c == 0x3A
            guard ok else {
                throw Rejection(.invalidValue, "\(f.wireName) may hold only A-Z a-z 0-9 _ - . : (got \"\(printable(leadingBytes(b)))\")")
            }
        }
    }

    /// Other strings: 1 to 256 bytes, no control characters.
    private mutating func text(_ f: FieldName) throws(Rejection) -> String {
        // Written without escapes (nearly always): checked in the input, with no closure or content to pass.
        if case let .string(r, false)? = fields.values[f.rawValue] {
            let ascii = try Self.checkText(input.span.extracting(r), f)
            return string(.raw(r), ascii: ascii)
        }
        let c = try content(f)
        let ascii = try withBytes(c) { (b) throws(Rejection) -> Bool in try Self.checkText(b, f) }
        return string(c, ascii: ascii)
    }

    /// Checks a text's bytes; returns whether they are all ASCII.
    @inline(__always)
    private static func checkText(_ b: borrowing Span<UInt8>, _ f: FieldName) throws(Rejection) -> Bool {
        guard b.count >= 1, b.count <= 256 else {
            throw Rejection(.invalidValue, "\(f.wireName) must be 1 to 256 bytes, got \(b.count)")
        }
        // Control characters in (already validated) UTF-8: bytes below 0x20, 0x7F, and U+0080-U+009F
        // (0xC2 followed by 0x80-0x9F).
        // Eight ASCII bytes at a time while they are ASCII, then byte by byte.
        var i = 0
        while i + 8 <= b.count {
            let w = ByteWords.load(b, i)
            guard w & ByteWords.highs == 0 else { break }
            if ByteWords.hasASCIIControl(w) { throw Rejection(.invalidValue, "\(f.wireName) contains a control character") }
            i += 8
        }
        // The last bytes in one more word: the last eight, overlapping the word before (only when the loop
        // ran out of whole words; after a non-ASCII word the bytes are looked at one by one below).
        if i < b.count && i + 8 > b.count && i >= 8 {
            let w = ByteWords.load(b, b.count - 8)
            if w & ByteWords.highs == 0 {
                if ByteWords.hasASCIIControl(w) { throw Rejection(.invalidValue, "\(f.wireName) contains a control character") }
                return true
            }
        }
        var previous: UInt8 = 0  // (the byte before `i`, if any, is ASCII)
        var all: UInt8 = 0
        while i < b.count {
            let c = b[i]
            if c < 0x20 || c == 0x7F || (previous == 0xC2 && c < 0xA0 && c >= 0x80) {
                throw Rejection(.invalidValue, "\(f.wireName) contains a control character")
            }
            previous = c
            all |= c
            i += 1
        }
        return all < 0x80
    }

    private mutating func enumeration<E>(_ f: FieldName, _ names: WireNames<E>) throws(Rejection) -> E {
        if case let .string(r, false)? = fields.values[f.rawValue], let e = names.match(input.span.extracting(r)) { return e }
        return try withBytes(f) { (b) throws(Rejection) -> E in
            guard let e = names.match(b) else {
                throw Rejection(.invalidValue, "\(f.wireName) \"\(printable(leadingBytes(b)))\" is not one of events.md's values")
            }
            return e
        }
    }

    /// An integer in 0...2^53 written without fraction or exponent.
    private mutating func integer(_ f: FieldName) throws(Rejection) -> Int64 {
        switch try value(f) {
        case let .integer(n): return n
        case .otherNumber: throw Rejection(.invalidValue, "\(f.wireName) must be an integer from 0 to 2^53 without fraction or exponent")
        default: throw Rejection(.wrongType, "\(f.wireName) must be an integer")
        }
    }

    /// `attempt`/`attempts`: an integer of at least 1.
    private mutating func count(_ f: FieldName) throws(Rejection) -> Int {
        let n = try integer(f)
        guard n >= 1 else { throw Rejection(.invalidValue, "\(f.wireName) must be at least 1") }
        guard n <= Int64(Int32.max) else { throw Rejection(.invalidValue, "\(f.wireName) is implausibly large") }
        return Int(n)
    }

    private mutating func time(_ f: FieldName) throws(Rejection) -> Timestamp {
        guard case let .string(r, escaped) = try value(f) else { throw Rejection(.wrongType, "\(f.wireName) must be a time string") }
        if !escaped, let t = Timestamp(rfc3339: input.span.extracting(r)) { return t }
        return try withBytes(f) { (b) throws(Rejection) -> Timestamp in
            guard let t = Timestamp(rfc3339: b) else {
                throw Rejection(.invalidTime, "\(f.wireName) \"\(printable(leadingBytes(b, limit: 40)))\" is not a time YYYY-MM-DDTHH:MM:SS.mmmZ in 2000-2099")
            }
            return t
        }
    }

    private mutating func day(_ f: FieldName) throws(Rejection) -> Day {
        try withBytes(f) { (b) throws(Rejection) -> Day in
            guard let d = Day(iso: b) else {
                throw Rejection(.invalidTime, "\(f.wireName) \"\(printable(leadingBytes(b, limit: 40)))\" is not a date YYYY-MM-DD in 2000-2099")
            }
            return d
        }
    }
}

/// The first `limit` bytes of a span, for messages.
func leadingBytes(_ b: borrowing Span<UInt8>, limit: Int = 64) -> [UInt8] {
    bytes(b.extracting(0..<min(b.count, limit)))
}

/// A span's bytes as an array.
func bytes(_ b: borrowing Span<UInt8>) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(b.count)
    for i in 0..<b.count { out.append(b[i]) }
    return out
}

/// The cases of a string enumeration by their wire bytes, matched without building a `String`: a name is
/// compared a word at a time (its whole words, then its last eight bytes), only with names of its length.
struct WireNames<E: RawRepresentable & CaseIterable & Sendable>: Sendable where E.RawValue == String {
    private let cases: [E]
    private let lengths: [Int]
    /// Each name's words, `wordStarts[i]..<wordStarts[i + 1]`: see `Self.words`.
    private let words: [UInt64]
    private let wordStarts: [Int]

    init() {
        cases = Array(E.allCases)
        let names = cases.map { Array($0.rawValue.utf8) }
        precondition(names.allSatisfy { !$0.isEmpty }, "wire names are not empty")
        lengths = names.map(\.count)
        var words: [UInt64] = [], starts = [0]
        for name in names {
            Self.words(name.span) { words.append($0) }
            starts.append(words.count)
        }
        self.words = words
        wordStarts = starts
    }

    /// The words of `b`: the whole eight-byte words from its start, then `ByteWords.lastWord` when its length
    /// is not a multiple of eight.
    @inline(__always)
    private static func words(_ b: borrowing Span<UInt8>, _ body: (UInt64) -> Void) {
        var i = 0
        while i + 8 <= b.count { body(ByteWords.load(b, i)); i += 8 }
        if i < b.count { body(ByteWords.lastWord(b)) }
    }

    func match(_ b: borrowing Span<UInt8>) -> E? {
        let n = b.count
        for i in lengths.indices where lengths[i] == n {
            var w = wordStarts[i]
            var equal = true
            var at = 0
            while at + 8 <= n {
                if ByteWords.load(b, at) != words[w] { equal = false; break }
                w += 1
                at += 8
            }
            if equal && at < n && ByteWords.lastWord(b) != words[w] { equal = false }
            if equal { return cases[i] }
        }
        return nil
    }
}

enum WireTables {
    static let eventType = WireNames<EventType>()
    static let plan = WireNames<Plan>()
    static let companySize = WireNames<CompanySize>()
    static let cancellation = WireNames<Cancellation>()
    static let failureReason = WireNames<FailureReason>()
    static let declineType = WireNames<DeclineType>()
    static let paymentMethod = WireNames<PaymentMethod>()
    static let cancelSource = WireNames<CancelSource>()
}

/// Resolves the escapes of a string's raw content (already checked by the scanner).
func unescapeSlice(_ raw: ArraySlice<UInt8>) throws(Rejection) -> [UInt8] {
    var out = [UInt8]()
    out.reserveCapacity(raw.count)
    var i = raw.startIndex
    func hex4(_ at: Int) -> UInt32 {
        var v: UInt32 = 0
        for k in 0..<4 {
            let c = raw[at + k]
            let d: UInt32 = switch c {
            case 0x30...0x39: UInt32(c - 0x30)
            case 0x41...0x46: UInt32(c - 0x41 + 10)
            default: UInt32(c &- 0x61 &+ 10) & 0xF
            }
            v = v << 4 | d
        }
        return v
    }
    func append(_ v: UInt32) {
        if let scalar = Unicode.Scalar(v) { out.append(contentsOf: Array(String(Character(scalar)).utf8)) }
    }
    while i < raw.endIndex {
        let c = raw[i]
        guard c == 0x5C else { out.append(c); i += 1; continue }
        let e = raw[i + 1]
        switch e {
        case UInt8(ascii: "b"): out.append(0x08); i += 2
        case UInt8(ascii: "f"): out.append(0x0C); i += 2
        case UInt8(ascii: "n"): out.append(0x0A); i += 2
        case UInt8(ascii: "r"): out.append(0x0D); i += 2
        case UInt8(ascii: "t"): out.append(0x09); i += 2
        case UInt8(ascii: "u"):
            let v = hex4(i + 2)
            i += 6
            if v >= 0xD800 && v < 0xDC00 {
                guard i + 6 <= raw.endIndex, raw[i] == 0x5C, raw[i + 1] == UInt8(ascii: "u") else {
                    throw Rejection(.invalidUTF8, "lone surrogate in a \\u escape")
                }
                let low = hex4(i + 2)
                guard low >= 0xDC00 && low < 0xE000 else { throw Rejection(.invalidUTF8, "lone surrogate in a \\u escape") }
                i += 6
                append(0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00))
            } else if v >= 0xDC00 && v < 0xE000 {
                throw Rejection(.invalidUTF8, "lone surrogate in a \\u escape")
            } else {
                append(v)
            }
        default: out.append(e); i += 2
        }
    }
    return out
}
