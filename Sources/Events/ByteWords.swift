/// Eight bytes at a time, without unsafe pointers: a bounds-checked slice of exactly eight bytes read as one
/// little-endian word (the compiler turns the eight byte reads into one load).
public enum ByteWords {
    public static let ones: UInt64 = 0x0101_0101_0101_0101
    public static let highs: UInt64 = 0x8080_8080_8080_8080

    /// The eight bytes at `i...(i + 7)`, little-endian. The caller guarantees `i + 8 <= s.count`.
    ///
    /// Written as a loop: the compiler then proves every index in bounds and emits one 8-byte load. Eight
    /// written-out `c[0]`...`c[7]` reads kept a bounds check each, and inlined into callers they compiled to
    /// a 4-byte load plus four single-byte loads, shifts and ors.
    @inlinable @inline(__always)
    public static func load(_ s: borrowing Span<UInt8>, _ i: Int) -> UInt64 {
        let c = s.extracting(i..<(i + 8))
        var w: UInt64 = 0
        for k in 0..<8 { w |= UInt64(c[k]) << UInt64(8 * k) }
        return w
    }

    /// The `n` bytes (0...8) at `i`, little-endian, zero above them: one masked word when eight bytes from
    /// `i` lie inside the span, else byte by byte.
    @inlinable @inline(__always)
    public static func loadPartial(_ s: borrowing Span<UInt8>, _ i: Int, _ n: Int) -> UInt64 {
        if n == 8 { return load(s, i) }
        if i + 8 <= s.count { return load(s, i) & ((1 << UInt64(n * 8)) &- 1) }
        var w: UInt64 = 0
        var shift: UInt64 = 0
        for k in i..<(i + n) {
            w |= UInt64(s[k]) << shift
            shift += 8
        }
        return w
    }

    /// The eight bytes at `i` when there are eight, else the bytes from `i` to the end, zero above: read
    /// from the span's last eight bytes when it has eight (a partial load at the end of a span goes byte by
    /// byte). The caller guarantees `i < s.count`.
    @inlinable @inline(__always)
    public static func loadWordOrTail(_ s: borrowing Span<UInt8>, _ i: Int) -> UInt64 {
        let n = s.count
        if i + 8 <= n { return load(s, i) }
        return n >= 8 ? load(s, n - 8) >> UInt64(8 * (8 - (n - i))) : loadPartial(s, i, n - i)
    }

    /// The span's last eight bytes, or all its bytes (zero above them) when it has fewer: the word that
    /// finishes a word-at-a-time comparison, overlapping the whole words before it.
    @inlinable @inline(__always)
    public static func lastWord(_ s: borrowing Span<UInt8>) -> UInt64 {
        s.count >= 8 ? load(s, s.count - 8) : loadPartial(s, 0, s.count)
    }

    /// The high bit set in each byte of `w` that equals `byte` (exact for the lowest such byte; a byte above
    /// it may be flagged falsely, which callers that look at the lowest flag never see).
    @inlinable @inline(__always)
    public static func bytesEqual(_ w: UInt64, _ byte: UInt8) -> UInt64 {
        let x = w ^ (ones &* UInt64(byte))
        return (x &- ones) & ~x & highs
    }

    /// The high bit set in each byte of `w` below `bound` (at most 0x80), with the same caveat.
    @inlinable @inline(__always)
    public static func bytesBelow(_ w: UInt64, _ bound: UInt8) -> UInt64 {
        (w &- ones &* UInt64(bound)) & ~w & highs
    }

    /// The high bit set in each byte of `w` that JSON writes escaped in a string: a quote, a backslash or a
    /// control character. The lowest flag of each mask is exact, so the lowest of their union is the first such
    /// byte (a flag above it may be false; none is set when there is no such byte).
    @inlinable @inline(__always)
    public static func jsonEscapes(_ w: UInt64) -> UInt64 {
        bytesEqual(w, 0x22) | bytesEqual(w, 0x5C) | bytesBelow(w, 0x20)
    }

    /// The high bit set in each byte of `w` that ends a run of plain bytes in a JSON string: one JSON escapes
    /// (`jsonEscapes`) or a non-ASCII byte, with the same caveat.
    @inlinable @inline(__always)
    public static func jsonStringStops(_ w: UInt64) -> UInt64 {
        jsonEscapes(w) | (w & highs)
    }

    /// Whether a byte of `w` is a control character: below 0x20 or 0x7F (exact: any flag is a real match).
    @inlinable @inline(__always)
    public static func hasASCIIControl(_ w: UInt64) -> Bool {
        bytesBelow(w, 0x20) | bytesEqual(w, 0x7F) != 0
    }

    /// For a word of ASCII bytes only (`w & highs == 0`): the high bit set in each byte at least `bound`
    /// (1...0x80), exactly (no byte's sum carries into the next).
    @inlinable @inline(__always)
    public static func asciiAtLeast(_ w: UInt64, _ bound: UInt8) -> UInt64 {
        (w &+ ones &* UInt64(0x80 - bound)) & highs
    }

    /// For a word of ASCII bytes only: the high bit set in each byte equal to `byte` (below 0x80), exactly.
    @inlinable @inline(__always)
    public static func asciiEqual(_ w: UInt64, _ byte: UInt8) -> UInt64 {
        let x = w ^ (ones &* UInt64(byte))
        return ~((x &+ ones &* 0x7F) | x) & highs
    }

    /// Whether all eight bytes of `w` are identifier bytes of events.md: `A-Z a-z 0-9 _ - . :`.
    @inlinable @inline(__always)
    public static func allIdentifierBytes(_ w: UInt64) -> Bool {
        guard w & highs == 0 else { return false }
        let punctuationAndDigits = asciiAtLeast(w, 0x2D) & ~asciiAtLeast(w, 0x3B) & ~asciiEqual(w, 0x2F)  // - . 0-9 :
        let upper = asciiAtLeast(w, 0x41) & ~asciiAtLeast(w, 0x5B)
        let lower = asciiAtLeast(w, 0x61) & ~asciiAtLeast(w, 0x7B)
        return punctuationAndDigits | upper | lower | asciiEqual(w, 0x5F) == highs
    }

    /// Whether two spans hold the same bytes: eight at a time, the last ones (at most eight) in one more word.
    @inlinable @inline(__always)
    public static func equal(_ a: borrowing Span<UInt8>, _ b: borrowing Span<UInt8>) -> Bool {
        let n = a.count
        guard n == b.count else { return false }
        var i = 0
        while i + 8 <= n {
            if load(a, i) != load(b, i) { return false }
            i += 8
        }
        return i == n || lastWord(a) == lastWord(b)
    }
}
