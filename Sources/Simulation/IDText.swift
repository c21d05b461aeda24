/// The simulator's identifiers (`cus_000042:17`, `ses_42_17`, `in_42_1_3` …), built in a fixed inline
/// buffer: string interpolation cost about a tenth of the simulation's instructions.
///
/// Only whole strings and non-negative decimal numbers are appended, so the bytes are always valid UTF-8.
/// 64 bytes hold every id the simulator makes: a prefix of at most 24 bytes (`cus_` and an index) and a
/// number, or a 4-byte prefix and three numbers with their separators (an `Int` has at most 19 digits).
struct IDText {
    private var bytes = InlineArray<64, UInt8>(repeating: 0)
    private(set) var count = 0
    /// Whether every byte appended so far is ASCII (numbers always are; the strings, prefixes, nearly always).
    private var isASCII = true

    init(_ s: String) { append(s) }

    mutating func append(_ s: String) {
        let span = s.utf8.span
        var all: UInt8 = 0
        for i in span.indices {
            bytes[count &+ i] = span[i]
            all |= span[i]
        }
        count += span.count
        if all >= 0x80 { isASCII = false }
    }

    mutating func append(ascii c: Unicode.Scalar) {
        bytes[count] = UInt8(ascii: c)
        count += 1
    }

    /// The number of decimal digits of `v` (≥ 0).
    static func digits(_ v: Int) -> Int {
        let x = v.magnitude
        var n = 1
        var p: UInt = 10
        while p <= x && n < 20 { p &*= 10; n += 1 }
        return n
    }

    /// `v` in decimal (`v` ≥ 0).
    mutating func append(_ v: Int) {
        var x = v.magnitude
        var k = count + Self.digits(v)
        count = k
        repeat {
            k -= 1
            bytes[k] = UInt8(truncatingIfNeeded: 0x30 &+ x % 10)
            x /= 10
        } while x > 0
    }

    /// Adds one to the decimal number that ends the text, whose digits start at `start`: the digits are
    /// counted up in place, as an odometer does, with no division (an event id's sequence number).
    mutating func incrementNumber(digitsFrom start: Int) {
        var k = count - 1
        while k >= start && bytes[k] == 0x39 {
            bytes[k] = 0x30
            k -= 1
        }
        if k >= start {
            bytes[k] &+= 1
            return
        }
        // All nines, now all zeros: one digit more.
        bytes[start] = 0x31
        bytes[count] = 0x30
        count += 1
    }

    var string: String {
        // Only whole strings and digits are appended, so the bytes are valid UTF-8 and need no validation
        // (which, with a scan for ASCII, cost about 110 instructions an event).
        String(copying: unsafe UTF8Span(unchecked: bytes.span.extracting(0..<count), isKnownASCII: isASCII))
    }
}
