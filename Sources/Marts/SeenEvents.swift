/// The accepted event ids of a partition, for exact duplicate detection.
///
/// Each id is kept as a 96-bit fingerprint (64 + 32 bits of two independent hashes) beside a 32-bit hash of
/// its value bytes, in one open-addressing table of 16-byte slots filled to at most 85%: about 19-38 bytes
/// of memory per accepted event (24 on average over growth), and 16 bytes per new event in a checkpoint.
/// Two different ids collide with probability about n²/2⁹⁷ (10⁻¹¹ for 10⁹ ids); a re-sent id whose value
/// differs is told from a duplicate unless the two values' 32-bit hashes collide (2⁻³²).
public struct SeenEvents: Sendable {
    private var keys: [UInt64]
    private var checks: [UInt64]
    public private(set) var count = 0

    public init(capacity: Int = 1024) {
        var n = 16
        while n < capacity { n <<= 1 }
        keys = Array(repeating: 0, count: n)
        checks = Array(repeating: 0, count: n)
    }

    public enum Outcome: Sendable, Equatable { case new, duplicate, conflict }

    /// The slot form of an id and its value: (key, check). A key is never 0 (0 marks a free slot).
    public static func slot(_ fp: EventFingerprint, valueHash: UInt64) -> (UInt64, UInt64) {
        (fp.a == 0 ? 1 : fp.a, (fp.b & 0xFFFF_FFFF_0000_0000) | (valueHash & 0xFFFF_FFFF))
    }

    public mutating func insert(_ fp: EventFingerprint, valueHash: UInt64) -> Outcome {
        let (key, check) = Self.slot(fp, valueHash: valueHash)
        return insert(key: key, check: check)
    }

    /// Inserts a slot as stored in a checkpoint (or reports what it already was).
    @discardableResult
    public mutating func insert(key: UInt64, check: UInt64) -> Outcome {
        if (count + 1) * 100 > keys.count * 85 { grow() }
        let mask = keys.count - 1
        var i = Int(truncatingIfNeeded: Self.mix(key)) & mask
        while keys[i] != 0 {
            if keys[i] == key && checks[i] >> 32 == check >> 32 {
                return checks[i] == check ? .duplicate : .conflict
            }
            i = (i + 1) & mask
        }
        keys[i] = key
        checks[i] = check
        count += 1
        return .new
    }

    /// Every stored slot, in table order.
    public var slots: [(UInt64, UInt64)] {
        var out: [(UInt64, UInt64)] = []
        out.reserveCapacity(count)
        for i in keys.indices where keys[i] != 0 { out.append((keys[i], checks[i])) }
        return out
    }

    public var memoryBytes: Int { keys.count * 16 }

    /// Makes room for `total` entries at once. Loading a checkpoint must reserve first: slots arrive in the
    /// order of a larger table, and inserting them into a growing smaller one piles them into long runs
    /// (linear probing's worst case).
    public mutating func reserve(_ total: Int) {
        var n = keys.count
        while total * 100 > n * 85 { n <<= 1 }
        if n > keys.count { rehash(to: n) }
    }

    private mutating func grow() { rehash(to: keys.count * 2) }

    private mutating func rehash(to size: Int) {
        let old = slots
        keys = Array(repeating: 0, count: size)
        checks = Array(repeating: 0, count: size)
        count = 0
        for (k, c) in old { insert(key: k, check: c) }
    }

    /// MurmurHash3's 64-bit finaliser: every key bit affects the slot.
    @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 33)) &* 0xff51_afd7_ed55_8ccd
        z = (z ^ (z >> 33)) &* 0xc4ce_b9fe_1a85_ec53
        return z ^ (z >> 33)
    }
}

extension SeenEvents: Equatable {
    /// Equal when they hold the same slots, whatever the table size.
    public static func == (a: SeenEvents, b: SeenEvents) -> Bool {
        a.count == b.count && a.slots.sorted { $0 < $1 }.elementsEqual(b.slots.sorted { $0 < $1 }) { $0 == $1 }
    }
}
