/// Rows in `COPY … FROM STDIN WITH (FORMAT binary)` form: a header, then per row its field count and each
/// field as a length and its bytes in the column type's binary form (network byte order), then a trailer.
/// The server reads these without parsing text: no number or time formatting on either side.
public struct CopyBinary: Sendable {
    public private(set) var bytes: [UInt8] = []
    public private(set) var rows = 0

    /// Microseconds from the Unix epoch to PostgreSQL's, 2000-01-01 00:00:00 UTC.
    static let postgresEpochMicroseconds: Int64 = 946_684_800_000_000

    public init(capacity: Int = 0) {
        bytes.reserveCapacity(capacity)
        bytes.append(contentsOf: [0x50, 0x47, 0x43, 0x4F, 0x50, 0x59, 0x0A, 0xFF, 0x0D, 0x0A, 0x00])  // PGCOPY\n\377\r\n\0
        put(Int32(0))  // flags
        put(Int32(0))  // header extension length
    }

    private mutating func put<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.bigEndian) { bytes.append(contentsOf: $0) }
    }

    /// Starts a row of `fields` fields; exactly that many values must follow.
    public mutating func beginRow(fields: Int) {
        put(Int16(fields))
        rows += 1
    }

    public mutating func null() { put(Int32(-1)) }

    /// `bigint`.
    public mutating func int64(_ v: Int64) {
        put(Int32(8))
        put(v)
    }

    /// `integer`.
    public mutating func int32(_ v: Int32) {
        put(Int32(4))
        put(v)
    }

    /// `double precision`, bit for bit.
    public mutating func double(_ v: Double) {
        put(Int32(8))
        put(v.bitPattern)
    }

    /// `boolean`.
    public mutating func bool(_ v: Bool) {
        put(Int32(1))
        bytes.append(v ? 1 : 0)
    }

    /// `text`, as UTF-8.
    public mutating func text(_ s: String) {
        var s = s
        s.withUTF8 { utf8 in
            put(Int32(utf8.count))
            bytes.append(contentsOf: utf8)
        }
    }

    /// `timestamptz` from milliseconds since the Unix epoch (the server keeps microseconds since 2000).
    public mutating func timestamp(unixMilliseconds ms: Int64) {
        put(Int32(8))
        put(ms * 1000 - Self.postgresEpochMicroseconds)
    }

    /// The end of the data; nothing may follow.
    public mutating func finish() { put(Int16(-1)) }

    /// Forgets the bytes (after sending them), keeping the row count and the capacity.
    public mutating func removeBytes() { bytes.removeAll(keepingCapacity: true) }
}
