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
