/// The order of a batch of times, earliest first, stable (equal times keep their batch order): a
/// least-significant-digit radix sort, 11 bits a pass, over each time's offset from the batch's start, the
/// batch index riding in the low 32 bits of the key. No comparisons, so no mispredicted branches; the
/// buffers are kept from batch to batch.
struct TimeOrder {
    /// `offset << 32 | batch index`, sorted once `sort` returns.
    private var keys: [UInt64] = []
    private var scratch: [UInt64] = []
    private var counts = [Int](repeating: 0, count: 2048)

    var count: Int { keys.count }

    /// The batch index of the `position`th earliest time.
    @inline(__always) func index(at position: Int) -> Int {
        Int(truncatingIfNeeded: keys[position] & 0xFFFF_FFFF)
    }

    mutating func removeAll() { keys.removeAll(keepingCapacity: true) }

    /// Sorts `times`, each in `start ..< start + span` (`span` < 2³², fewer than 2³² times).
    mutating func sort(_ times: some Sequence<Int64>, start: Int64, span: Int64) {
        keys.removeAll(keepingCapacity: true)
        var n = 0
        for t in times {
            keys.append(UInt64(truncatingIfNeeded: t &- start) << 32 | UInt64(truncatingIfNeeded: n))
            n += 1
        }
        guard n > 1 else { return }
        if scratch.count < n { scratch = Array(repeating: 0, count: n) }
        let bits = 64 - UInt64(truncatingIfNeeded: Swift.max(span, 1)).leadingZeroBitCount
        var shift = 32
        while shift < 32 + bits {
            if Self.pass(keys, into: &scratch, counts: &counts, shift: UInt64(shift), n: n) { swap(&keys, &scratch) }
            shift += 11
        }
        if keys.count > n { keys.removeLast(keys.count - n) }
    }

    /// One stable counting pass of `keys[0..<n]` on the 11 bits at `shift`, into `out`; false (and nothing
    /// moved) when every key has the same digit there.
    private static func pass(_ keys: [UInt64], into out: inout [UInt64], counts: inout [Int], shift: UInt64, n: Int) -> Bool {
        var c = counts.mutableSpan
        for d in 0..<2048 { c[d] = 0 }
        let k = keys.span
        for i in 0..<n { c[Int(truncatingIfNeeded: (k[i] >> shift) & 2047)] += 1 }
        if c[Int(truncatingIfNeeded: (k[0] >> shift) & 2047)] == n { return false }
        var sum = 0
        for d in 0..<2048 {
            let x = c[d]
            c[d] = sum
            sum += x
        }
        var o = out.mutableSpan
        for i in 0..<n {
            let key = k[i]
            let d = Int(truncatingIfNeeded: (key >> shift) & 2047)
            o[c[d]] = key
            c[d] += 1
        }
        return true
    }
}
