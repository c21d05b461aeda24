/// The accepted event ids of a partition, for exact duplicate detection.
///
/// Each id is kept as a 96-bit fingerprint (64 + 32 bits of two independent hashes) beside a 32-bit hash of
/// its value bytes, in one open-addressing table of 16-byte slots filled to at most 85%: about 19-38 bytes
/// of memory per accepted event (24 on average over growth), and 16 bytes per new event in a checkpoint.
/// Two different ids collide with probability about n²/2⁹⁷ (10⁻¹¹ for 10⁹ ids); a re-sent id whose value
/// differs is told from a duplicate unless the two values' 32-bit hashes collide (2⁻³²).
public struct SeenEvents: Sendable {
    /// Slot i is `table[2i]` (the key, 0 when free) and `table[2i + 1]` (the check): one cache line per probe.
    private var table: [UInt64]
    /// The number of slots (a power of two).
    private var slotCount: Int
    public private(set) var count = 0

    public init(capacity: Int = 1024) {
        var n = 16
        while n < capacity { n <<= 1 }
        table = Array(repeating: 0, count: 2 * n)
        slotCount = n
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
        if (count + 1) * 100 > slotCount * 85 { grow() }
        let mask = slotCount - 1
        var i = Int(truncatingIfNeeded: Self.mix(key)) & mask
        while table[2 * i] != 0 {
            let stored = table[2 * i + 1]
            if table[2 * i] == key && stored >> 32 == check >> 32 {
                return stored == check ? .duplicate : .conflict
            }
            i = (i + 1) & mask
        }
        table[2 * i] = key
        table[2 * i + 1] = check
        count += 1
        return .new
    }

    /// The key stored where `key`'s probe starts (see `MartState.warm`).
    @inline(__always) public func peek(key: UInt64) -> UInt64 {
        table[2 * (Int(truncatingIfNeeded: Self.mix(key)) & (slotCount - 1))]
    }

    /// Every stored slot, in table order.
    public var slots: [(UInt64, UInt64)] {
        var out: [(UInt64, UInt64)] = []
        out.reserveCapacity(count)
        for i in 0..<slotCount where table[2 * i] != 0 { out.append((table[2 * i], table[2 * i + 1])) }
        return out
    }

    public var memoryBytes: Int { slotCount * 16 }

    /// Makes room for `total` entries at once. Loading a checkpoint must reserve first: slots arrive in the
    /// order of a larger table, and inserting them into a growing smaller one piles them into long runs
    /// (linear probing's worst case).
    public mutating func reserve(_ total: Int) {
        var n = slotCount
        while total * 100 > n * 85 { n <<= 1 }
        if n > slotCount { rehash(to: n) }
    }

    private mutating func grow() { rehash(to: slotCount * 2) }

    private mutating func rehash(to size: Int) {
        let old = slots
        table = Array(repeating: 0, count: 2 * size)
        slotCount = size
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
