/// One line of an NDJSON archive: a Kafka message with where it belongs.
///
/// Format (one JSON object per line, UTF-8, fields in this order, optional ones omitted):
/// `{"topic":"billing","partition":3,"offset":17,"key":"cus_000001","timestamp":"2024-01-01T00:00:00.000Z",
///   "headers":{"event-type":"customer.signed_up","schema":"1"},"value":"<the message value as a JSON string>"}`
/// `value` holds the exact bytes of the message value (valid UTF-8); a value that is not UTF-8 is written
/// as `value_base64` instead. `partition`, `offset` and `headers` are present in recordings of a cluster,
/// absent in `undercurrent simulate` output (replay derives the headers from the event then).
public struct ArchiveRecord: Sendable, Equatable {
    public var topic: String
    public var partition: Int32?
    public var offset: Int64?
    public var key: [UInt8]?
    public var timestamp: Timestamp?
    public var headers: [(String, String)]
    public var value: [UInt8]

    public init(topic: String, partition: Int32? = nil, offset: Int64? = nil, key: [UInt8]?, timestamp: Timestamp?,
                headers: [(String, String)] = [], value: [UInt8]) {
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.key = key
        self.timestamp = timestamp
        self.headers = headers
        self.value = value
    }

    public static func == (a: ArchiveRecord, b: ArchiveRecord) -> Bool {
        a.topic == b.topic && a.partition == b.partition && a.offset == b.offset && a.key == b.key
            && a.timestamp == b.timestamp && a.value == b.value
            && a.headers.map(\.0) == b.headers.map(\.0) && a.headers.map(\.1) == b.headers.map(\.1)
    }

    /// The record of an event as the simulator emits it.
    public init(event: Event, value: [UInt8]) {
        self.init(topic: event.topic.rawValue, key: Array(event.customerID.utf8), timestamp: event.occurredAt, value: value)
    }

    /// Appends the line (with its trailing newline) to `out`.
    public func appendLine(to out: inout [UInt8]) {
        var w = EventEncoder.Writer(out: [])
        swap(&w.out, &out)
        w.raw("{\"topic\":")
        w.string(topic)
        if let partition { w.raw(",\"partition\":"); w.appendInt(Int64(partition)) }
        if let offset { w.raw(",\"offset\":"); w.appendInt(offset) }
        if let key {
            w.raw(",\"key\":")
            w.string(String(decoding: key, as: UTF8.self))
        }
        if let timestamp {
            w.raw(",\"timestamp\":\"")
            timestamp.appendRFC3339(to: &w.out)
            w.out.append(0x22)
        }
        if !headers.isEmpty {
            w.raw(",\"headers\":{")
            for (i, (name, value)) in headers.enumerated() {
                if i > 0 { w.out.append(UInt8(ascii: ",")) }
                w.string(name)
                w.out.append(UInt8(ascii: ":"))
                w.string(value)
            }
            w.out.append(UInt8(ascii: "}"))
        }
        if let text = String(validating: value, as: UTF8.self) {
            w.raw(",\"value\":")
            w.string(text)
        } else {
            w.raw(",\"value_base64\":\"")
            w.raw(Base64.encode(value))
            w.out.append(0x22)
        }
        w.raw("}\n")
        swap(&w.out, &out)
    }
}

enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)
    static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        var i = 0
        while i + 3 <= bytes.count {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], alphabet[Int(n & 63)]]
            i += 3
        }
        let rest = bytes.count - i
        if rest == 1 {
            let n = UInt32(bytes[i]) << 16
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], 61, 61]
        } else if rest == 2 {
            let n = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8
            out += [alphabet[Int(n >> 18)], alphabet[Int(n >> 12 & 63)], alphabet[Int(n >> 6 & 63)], 61]
        }
        return String(decoding: out, as: UTF8.self)
    }
}

// MARK: Parsing

extension ArchiveRecord {
    /// Parses one archive line (any field order and whitespace; unknown fields are skipped).
    /// Returns nil with a reason for anything that is not an archive record.
    public static func parse(line: ArraySlice<UInt8>) -> Result<ArchiveRecord, ArchiveLineError> {
        var out: [UInt8] = []
        switch parse(line: line, into: &out) {
        case let .success(l):
            return .success(ArchiveRecord(topic: l.topic, partition: l.partition, offset: l.offset, key: l.key.map { Array(out[$0]) },
                                          timestamp: l.timestampMs.map { Timestamp(ms: $0) }, headers: l.headers,
                                          value: Array(out[l.value])))
        case let .failure(e): return .failure(e)
        }
    }

    /// Parses one archive line, appending its key and value bytes (escapes resolved) to `out`, where the
    /// result's ranges point.
    public static func parse(line: ArraySlice<UInt8>, into out: inout [UInt8]) -> Result<ArchiveLine, ArchiveLineError> {
        var w = out.count
        out.append(contentsOf: repeatElement(0, count: roomNeeded(line)))
        let result = parse(line: line, into: &out, at: &w)
        out.removeLast(out.count - w)
        return result
    }

    /// The room `parse(line:into:at:)` needs after its position: a line's key and value are never longer than
    /// the line, and a word may be stored whole past the end of what it writes (`wordSlack`).
    public static func roomNeeded(_ line: ArraySlice<UInt8>) -> Int { line.count + wordSlack }
    public static let wordSlack = 8

    /// Parses one archive line, writing its key and value bytes (escapes resolved) into `out` from `w` (moved past
    /// them), where the result's ranges point. `out` must have `roomNeeded(line)` bytes from `w`: a block of lines
    /// parsed into one buffer made once costs no allocation and no resizing per line.
    public static func parse(line: ArraySlice<UInt8>, into out: inout [UInt8], at w: inout Int) -> Result<ArchiveLine, ArchiveLineError> {
        precondition(out.count - w >= roomNeeded(line), "room for the line's key and value")
        var p = LineParser(bytes: line)
        let mark = w
        do {
            var elements = out.mutableSpan
            var m = elements.mutableBytes
            if let l = p.canonicalRecord(into: &m, at: &w) { return .success(l) }
        }
        w = mark
        // Any other layout: the general parser, into a buffer of its own, then copied into place.
        var scratch: [UInt8] = []
        do {
            var l = try p.record(into: &scratch)
            out.replaceSubrange(w..<(w + scratch.count), with: scratch)
            l.key = l.key.map { ($0.lowerBound + w)..<($0.upperBound + w) }
            l.value = (l.value.lowerBound + w)..<(l.value.upperBound + w)
            w += scratch.count
            return .success(l)
        } catch {
            return .failure(error)
        }
    }
}

/// An archive line parsed into ranges of a caller's buffer (see `ArchiveRecord.parse(line:into:)`).
public struct ArchiveLine: Sendable {
    public var topic: String
    public var partition: Int32?
    public var offset: Int64?
    /// The key's bytes in the buffer, nil without a key.
    public var key: Range<Int>?
    public var timestampMs: Int64?
    public var headers: [(String, String)]
    /// The value's bytes in the buffer.
    public var value: Range<Int>
}

public struct ArchiveLineError: Error, Sendable, CustomStringConvertible {
    public var description: String
}

/// A small JSON reader for archive lines: objects, strings (all escapes), integers; other values skipped.
struct LineParser {
    let bytes: ArraySlice<UInt8>
    var i: Int

    init(bytes: ArraySlice<UInt8>) {
        self.bytes = bytes
        i = bytes.startIndex
    }

    func fail(_ why: String) -> ArchiveLineError { ArchiveLineError(description: why) }

    mutating func ws() {
        while i < bytes.endIndex {
            switch bytes[i] {
            case 0x20, 0x09, 0x0D, 0x0A: i += 1
            default: return
            }
        }
    }

    mutating func expect(_ c: UInt8) throws(ArchiveLineError) {
        ws()
        guard i < bytes.endIndex, bytes[i] == c else { throw fail("expected '\(Character(UnicodeScalar(c)))'") }
        i += 1
    }

    mutating func peek() -> UInt8? {
        ws()
        return i < bytes.endIndex ? bytes[i] : nil
    }

    /// The fields of an archive line.
    enum Field: CaseIterable {
        case value, key, topic, timestamp, partition, offset, headers, valueBase64
        var name: String { self == .valueBase64 ? "value_base64" : "\(self)" }
    }
    static let fieldNames: [(bytes: [UInt8], field: Field)] = Field.allCases.map { (Array($0.name.utf8), $0) }

    /// Which field a name is (nil for one an archive line does not have), compared a word at a time.
    static func field(_ name: Span<UInt8>) -> Field? {
        for f in fieldNames where ByteWords.equal(f.bytes.span, name) { return f.field }
        return nil
    }

    /// The topic names an archive normally holds, so that reading one allocates nothing.
    static let knownTopics: [(bytes: [UInt8], name: String)] = (Topics.inputs + Topics.outputs).map { (Array($0.utf8), $0) }

    mutating func record(into out: inout [UInt8]) throws(ArchiveLineError) -> ArchiveLine {
        try expect(UInt8(ascii: "{"))
        var topic: String?, partition: Int32?, offset: Int64?, key: Range<Int>?, timestamp: Int64?
        var headers: [(String, String)] = [], value: Range<Int>?
        if peek() == UInt8(ascii: "}") { i += 1 } else {
            var scratch: [UInt8] = []
            while true {
                scratch.removeAll(keepingCapacity: true)
                let nameRange = try string(into: &scratch)
                let name = Self.field(scratch.span.extracting(nameRange))
                try expect(UInt8(ascii: ":"))
                if name == .value {
                    value = try string(into: &out)
                } else if name == .key {
                    if peek() == UInt8(ascii: "n") { try skip() } else { key = try string(into: &out) }
                } else if name == .topic {
                    scratch.removeAll(keepingCapacity: true)
                    let r = try string(into: &scratch)
                    let topicBytes = scratch.span.extracting(r)
                    topic = Self.knownTopics.first { ByteWords.equal($0.bytes.span, topicBytes) }?.name ?? String(decoding: scratch[r], as: UTF8.self)
                } else if name == .timestamp {
                    scratch.removeAll(keepingCapacity: true)
                    let r = try string(into: &scratch)
                    guard let t = Timestamp(rfc3339: scratch[r]) else { throw fail("bad timestamp") }
                    timestamp = t.ms
                } else if name == .partition {
                    guard let n = Int32(exactly: try integer()) else { throw fail("partition out of range") }
                    partition = n
                } else if name == .offset {
                    offset = try integer()
                } else if name == .headers {
                    try expect(UInt8(ascii: "{"))
                    if peek() == UInt8(ascii: "}") { i += 1 } else {
                        while true {
                            let k = String(decoding: try string(), as: UTF8.self)
                            try expect(UInt8(ascii: ":"))
                            headers.append((k, String(decoding: try string(), as: UTF8.self)))
                            if peek() == UInt8(ascii: ",") { i += 1; continue }
                            try expect(UInt8(ascii: "}"))
                            break
                        }
                    }
                } else if name == .valueBase64 {
                    guard let d = Base64.decode(try string()) else { throw fail("bad value_base64") }
                    let start = out.count
                    out.append(contentsOf: d)
                    value = start..<out.count
                } else {
                    try skip()
                }
                if peek() == UInt8(ascii: ",") { i += 1; continue }
                try expect(UInt8(ascii: "}"))
                break
            }
        }
        ws()
        guard i == bytes.endIndex else { throw fail("text after the record") }
        guard let topic else { throw fail("not an archive record (no topic)") }
        guard let value else { throw fail("no value") }
        return ArchiveLine(topic: topic, partition: partition, offset: offset, key: key, timestampMs: timestamp,
                           headers: headers.count > 1 ? headers.sorted { $0.0 < $1.0 } : headers, value: value)
    }

    // MARK: The layout `appendLine` writes

    static let canonicalStart = Array(#"{"topic":""#.utf8)
    static let canonicalPartition = Array(#","partition":"#.utf8)
    static let canonicalOffset = Array(#","offset":"#.utf8)
    static let canonicalKey = Array(#","key":""#.utf8)
    static let canonicalTimestamp = Array(#","timestamp":""#.utf8)
    static let canonicalValue = Array(#","value":""#.utf8)

    /// The line read as `ArchiveRecord.appendLine` writes it without headers (fields in its order, no whitespace,
    /// no escapes but in the value): what `record(into:)` would return, without its field lookups, whitespace
    /// checks and scratch buffer, its key and value written into `m` from `w` (moved past them), which has
    /// `ArchiveRecord.roomNeeded` bytes from there. Nil for any other line, which `record(into:)` then reads (the
    /// caller sets `w` back).
    func canonicalRecord(into m: inout MutableRawSpan, at w: inout Int) -> ArchiveLine? {
        let base = bytes.startIndex
        let s = bytes.span
        var k = 0
        guard Self.literal(s, &k, Self.canonicalStart), let t = Self.plainString(s, &k) else { return nil }
        let topicBytes = s.extracting(t)
        let topic = Self.knownTopics.first { ByteWords.equal($0.bytes.span, topicBytes) }?.name
            ?? String(decoding: bytes[(base + t.lowerBound)..<(base + t.upperBound)], as: UTF8.self)
        var partition: Int32?, offset: Int64?, key: Range<Int>?, timestamp: Int64?
        if Self.literal(s, &k, Self.canonicalPartition) {
            guard let n = Self.plainInteger(s, &k), let p = Int32(exactly: n) else { return nil }
            partition = p
        }
        if Self.literal(s, &k, Self.canonicalOffset) {
            guard let n = Self.plainInteger(s, &k) else { return nil }
            offset = n
        }
        if Self.literal(s, &k, Self.canonicalKey) {
            guard let r = Self.plainString(s, &k) else { return nil }
            let first = w
            for j in r {
                m.storeBytes(of: s[j], toByteOffset: w, as: UInt8.self)
                w += 1
            }
            key = first..<w
        }
        if Self.literal(s, &k, Self.canonicalTimestamp) {
            guard let r = Self.plainString(s, &k), let time = Timestamp(rfc3339: s.extracting(r)) else { return nil }
            timestamp = time.ms
        }
        guard Self.literal(s, &k, Self.canonicalValue), s.count - k >= 2, s[s.count - 1] == UInt8(ascii: "}") else { return nil }
        // The value's body, escapes resolved as `string(into:)` does; it must end just before the closing brace.
        let first = w
        let failure = Self.unescape(s, at: &k, into: &m, at: &w)
        guard failure == nil, k == s.count - 1 else { return nil }
        return ArchiveLine(topic: topic, partition: partition, offset: offset, key: key, timestampMs: timestamp, headers: [],
                           value: first..<w)
    }

    /// Whether `literal` is at `k` (then moved past it).
    static func literal(_ s: borrowing Span<UInt8>, _ k: inout Int, _ literal: [UInt8]) -> Bool {
        let n = literal.count
        guard k + n <= s.count, ByteWords.equal(literal.span, s.extracting(k..<(k + n))) else { return false }
        k += n
        return true
    }

    /// The bytes from `k` to the next quote (then `k` is just past it), when none of them needs unescaping.
    static func plainString(_ s: borrowing Span<UInt8>, _ k: inout Int) -> Range<Int>? {
        let first = k
        while k + 8 <= s.count {  // a word at a time to the first quote, backslash or control character
            let stops = ByteWords.jsonEscapes(ByteWords.load(s, k))
            if stops == 0 {
                k += 8
                continue
            }
            k += stops.trailingZeroBitCount / 8
            guard s[k] == 0x22 else { return nil }
            k += 1
            return first..<(k - 1)
        }
        while k < s.count {
            let c = s[k]
            if c == 0x22 {
                k += 1
                return first..<(k - 1)
            }
            if c == 0x5C || c < 0x20 { return nil }
            k += 1
        }
        return nil
    }

    /// A non-negative integer of at most 18 digits at `k` (no overflow possible), then `k` past it.
    static func plainInteger(_ s: borrowing Span<UInt8>, _ k: inout Int) -> Int64? {
        var n: Int64 = 0, digits = 0
        while k < s.count, digits < 19, (0x30...0x39).contains(s[k]) {
            n = n * 10 + Int64(s[k] - 0x30)
            k += 1
            digits += 1
        }
        return digits > 0 && digits <= 18 ? n : nil
    }

    mutating func integer() throws(ArchiveLineError) -> Int64 {
        ws()
        var neg = false
        if i < bytes.endIndex, bytes[i] == UInt8(ascii: "-") { neg = true; i += 1 }
        var n: Int64 = 0, digits = 0
        while i < bytes.endIndex, (0x30...0x39).contains(bytes[i]) {
            let (m, o1) = n.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(Int64(bytes[i] - 0x30))
            if o1 || o2 { throw fail("number out of range") }
            n = s
            i += 1
            digits += 1
        }
        guard digits > 0 else { throw fail("expected a number") }
        return neg ? -n : n
    }

    /// A JSON string's bytes (UTF-8), escapes resolved.
    mutating func string() throws(ArchiveLineError) -> [UInt8] {
        var out: [UInt8] = []
        _ = try string(into: &out)
        return out
    }

    /// Appends a JSON string's bytes (UTF-8, escapes resolved) to `out`; returns where they are. Written
    /// into `out`'s spare capacity (the string is never longer than the rest of the line): no slice is made,
    /// so no reference count moves per piece between escapes.
    mutating func string(into out: inout [UInt8]) throws(ArchiveLineError) -> Range<Int> {
        try expect(0x22)
        let first = out.count
        let base = bytes.startIndex
        var k = i - base
        var failure: ArchiveLineError?
        out.append(addingCapacity: bytes.endIndex - i) { o in
            failure = Self.unescape(bytes.span, at: &k, into: &o)  // (`i` is set after, once the span is gone)
        }
        i = base + k
        if let failure { throw failure }
        return first..<out.count
    }

    /// The body of `string(into:)`: from `k` (just after the opening quote) to just after the closing one.
    /// A static function of `inout` arguments, so that the compiler checks exclusive access once, statically,
    /// instead of at every byte (a closure's captured variables are checked at run time). Runs of plain bytes
    /// are found eight at a time. (The general parser's strings are not written by the faster loop below: its room
    /// would be zeroed to the line's end once per string, and a line can hold thousands of strings.)
    static func unescape(_ span: Span<UInt8>, at position: inout Int, into o: inout OutputSpan<UInt8>) -> ArchiveLineError? {
        var k = position
        defer { position = k }
        let n = span.count
        while k < n {
            // Skip to the next quote, backslash or control character, a word at a time, copying as we go.
            while k + 8 <= n {
                let word = ByteWords.load(span, k)
                let stops = ByteWords.jsonEscapes(word)
                let plain = stops == 0 ? 8 : stops.trailingZeroBitCount / 8
                if o.freeCapacity >= 8 {
                    // The whole word stored at once, then the output cut back to its plain bytes.
                    let at = o.count
                    o.append(repeating: 0, count: 8)
                    var elements = o.mutableSpan
                    var bytes = elements.mutableBytes
                    bytes.storeBytes(of: word.littleEndian, toByteOffset: at, as: UInt64.self)
                    o.removeLast(8 - plain)
                } else {
                    for j in k..<(k + plain) { o.append(span[j]) }
                }
                k += plain
                if plain < 8 {
                    // The commonest escape in an archived value, `\"`, resolved without leaving the loop.
                    guard k + 1 < n, span[k] == 0x5C, span[k + 1] == 0x22, o.freeCapacity > 0 else { break }
                    o.append(0x22)
                    k += 2
                }
            }
            guard k < n else { break }
            let c = span[k]
            k += 1
            if c == 0x22 { return nil }
            if c < 0x20 { return ArchiveLineError(description: "control character in a string") }
            guard c == 0x5C else {
                o.append(c)
                continue
            }
            guard let e = escaped(span, at: &k) else { return ArchiveLineError(description: "bad escape") }
            switch e {
            case let .byte(b): o.append(b)
            case let .scalar(u): for b in String(Character(u)).utf8 { o.append(b) }  // at most 4 bytes, from at least 6
            case let .failure(message): return ArchiveLineError(description: message)
            }
        }
        return ArchiveLineError(description: "unterminated string")
    }

    /// `unescape(_:at:into:)` writing at `w` in `m` (moved past what it wrote), which has room for the rest of the
    /// span and eight bytes more: each word is stored whole and only its plain bytes counted, with an index of its
    /// own (an `OutputSpan`'s appends updated its count in memory several times a word).
    static func unescape(_ span: Span<UInt8>, at position: inout Int, into m: inout MutableRawSpan, at wAt: inout Int) -> ArchiveLineError? {
        var k = position, w = wAt
        defer { (position, wAt) = (k, w) }
        let n = span.count
        let raw = span.bytes
        while true {
            while k &+ 8 <= n {
                // (A bounds-checked load of eight bytes as one word; `ByteWords.load`'s eight byte loads were not
                // merged into one in this loop.)
                let word = UInt64(littleEndian: raw.unsafeLoadUnaligned(fromByteOffset: k, as: UInt64.self))
                m.storeBytes(of: word.littleEndian, toByteOffset: w, as: UInt64.self)
                let stops = ByteWords.jsonEscapes(word)
                if stops == 0 {
                    k &+= 8
                    w &+= 8
                    continue
                }
                let plain = stops.trailingZeroBitCount &>> 3
                k &+= plain
                w &+= plain
                // The commonest escape in an archived value, `\"`, resolved without leaving the loop.
                guard k &+ 1 < n, span[k] == 0x5C, span[k &+ 1] == 0x22 else { break }
                m.storeBytes(of: 0x22, toByteOffset: w, as: UInt8.self)
                w &+= 1
                k &+= 2
            }
            guard k < n else { break }
            let c = span[k]
            k += 1
            if c == 0x22 { return nil }
            if c < 0x20 { return ArchiveLineError(description: "control character in a string") }
            guard c == 0x5C else {
                m.storeBytes(of: c, toByteOffset: w, as: UInt8.self)
                w += 1
                continue
            }
            guard let e = escaped(span, at: &k) else { return ArchiveLineError(description: "bad escape") }
            switch e {
            case let .byte(b):
                m.storeBytes(of: b, toByteOffset: w, as: UInt8.self)
                w += 1
            case let .scalar(u):
                for b in String(Character(u)).utf8 {  // at most 4 bytes, from at least 6
                    m.storeBytes(of: b, toByteOffset: w, as: UInt8.self)
                    w += 1
                }
            case let .failure(message):
                return ArchiveLineError(description: message)
            }
        }
        return ArchiveLineError(description: "unterminated string")
    }

    enum Escaped {
        case byte(UInt8)
        case scalar(Unicode.Scalar)
        case failure(String)
    }

    /// The escape after a backslash at `k` (moved past it): one byte, a `\u` scalar (a surrogate pair read whole),
    /// or what is wrong with it (the span ending first included); nil for an escape JSON does not have.
    static func escaped(_ span: Span<UInt8>, at k: inout Int) -> Escaped? {
        let n = span.count
        guard k < n else { return .failure("unterminated string") }
        let e = span[k]
        k += 1
        switch e {
        case 0x22, 0x5C, 0x2F: return .byte(e)
        case UInt8(ascii: "b"): return .byte(0x08)
        case UInt8(ascii: "f"): return .byte(0x0C)
        case UInt8(ascii: "n"): return .byte(0x0A)
        case UInt8(ascii: "r"): return .byte(0x0D)
        case UInt8(ascii: "t"): return .byte(0x09)
        case UInt8(ascii: "u"):
            guard var scalar = hex4(span, &k) else { return .failure("bad \\u escape") }
            if (0xD800..<0xDC00).contains(scalar), k + 1 < n, span[k] == 0x5C, span[k + 1] == UInt8(ascii: "u") {
                k += 2
                guard let low = hex4(span, &k), (0xDC00..<0xE000).contains(low) else { return .failure("bad surrogate pair") }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            }
            guard let u = Unicode.Scalar(scalar) else { return .failure("bad \\u escape") }
            return .scalar(u)
        default:
            return nil
        }
    }

    /// Four hex digits at `k` (moved past them), or nil.
    static func hex4(_ span: Span<UInt8>, _ k: inout Int) -> UInt32? {
        guard k + 4 <= span.count else { return nil }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = span[k]
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x41...0x46: d = c - 0x41 + 10
            case 0x61...0x66: d = c - 0x61 + 10
            default: return nil
            }
            v = v << 4 | UInt32(d)
            k += 1
        }
        return v
    }

    /// Skips any JSON value.
    mutating func skip(depth: Int = 0) throws(ArchiveLineError) {
        guard depth < 32 else { throw fail("nested too deeply") }
        guard let c = peek() else { throw fail("expected a value") }
        switch c {
        case 0x22: _ = try string()
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            let close = c == UInt8(ascii: "{") ? UInt8(ascii: "}") : UInt8(ascii: "]")
            i += 1
            if peek() == close { i += 1; return }
            while true {
                if c == UInt8(ascii: "{") { _ = try string(); try expect(UInt8(ascii: ":")) }
                try skip(depth: depth + 1)
                if peek() == UInt8(ascii: ",") { i += 1; continue }
                try expect(close)
                return
            }
        default:
            let start = i
            while i < bytes.endIndex, !([0x2C, 0x7D, 0x5D, 0x20, 0x09, 0x0D, 0x0A] as [UInt8]).contains(bytes[i]) { i += 1 }
            guard i > start else { throw fail("expected a value") }
        }
    }
}

extension Base64 {
    static func decode(_ text: [UInt8]) -> [UInt8]? {
        var table = [UInt8](repeating: 255, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = UInt8(i) }
        let chars = text.filter { $0 != 61 }
        guard text.count % 4 == 0 else { return nil }
        var out: [UInt8] = [], acc: UInt32 = 0, bits = 0
        for c in chars {
            let v = table[Int(c)]
            guard v != 255 else { return nil }
            acc = acc << 6 | UInt32(v)
            bits += 6
            if bits >= 8 {
                bits -= 8
                out.append(UInt8(truncatingIfNeeded: acc >> UInt32(bits)))
            }
        }
        return out
    }
}
