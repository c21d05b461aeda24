/// Rows in `COPY … FROM STDIN` text format: tab-separated fields, `\N` for NULL, backslash escapes for
/// backslash, tab, newline and carriage return, one line per row.
public struct CopyText: Sendable {
    public private(set) var bytes: [UInt8] = []
    public private(set) var rows = 0
    private var fieldsInRow = 0

    public init(capacity: Int = 0) { bytes.reserveCapacity(capacity) }

    private mutating func separate() {
        if fieldsInRow > 0 { bytes.append(0x09) }
        fieldsInRow += 1
    }

    public mutating func null() {
        separate()
        bytes.append(0x5C); bytes.append(0x4E)  // \N
    }

    public mutating func text(_ s: String) {
        separate()
        var s = s
        s.withUTF8 { utf8 in
            for b in utf8 {
                switch b {
                case 0x5C: bytes.append(0x5C); bytes.append(0x5C)
                case 0x09: bytes.append(0x5C); bytes.append(0x74)
                case 0x0A: bytes.append(0x5C); bytes.append(0x6E)
                case 0x0D: bytes.append(0x5C); bytes.append(0x72)
                default: bytes.append(b)
                }
            }
        }
    }

    /// Text known to need no escaping (numbers, times, codes).
    public mutating func plain(_ s: String) {
        separate()
        var s = s
        s.withUTF8 { bytes.append(contentsOf: $0) }
    }

    public mutating func int(_ v: Int64) {
        separate()
        if v == 0 { bytes.append(0x30); return }
        var n = v.magnitude
        if v < 0 { bytes.append(0x2D) }
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var count = 0
        withUnsafeMutableBytes(of: &digits) { d in
            while n > 0 {
                d[count] = UInt8(n % 10) + 0x30
                n /= 10
                count += 1
            }
            for i in stride(from: count - 1, through: 0, by: -1) { bytes.append(d[i]) }
        }
    }

    public mutating func bool(_ v: Bool) {
        separate()
        bytes.append(v ? 0x74 : 0x66)  // t / f
    }

    /// A double in the shortest form that reads back as the same value.
    public mutating func double(_ v: Double) { plain(v.description) }

    /// Forgets the bytes (after sending them), keeping the row count and the capacity.
    public mutating func removeBytes() { bytes.removeAll(keepingCapacity: true) }

    public mutating func endRow() {
        bytes.append(0x0A)
        rows += 1
        fieldsInRow = 0
    }
}
