import Foundation

/// xoshiro256**, seeded through SplitMix64: fast, and the same numbers on every platform.
public struct Xoshiro: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var sm = seed
        func splitmix() -> UInt64 {
            sm &+= 0x9E37_79B9_7F4A_7C15
            var z = sm
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix(); s1 = splitmix(); s2 = splitmix(); s3 = splitmix()
    }

    @inline(__always) public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }

    /// Uniform in [0, 1).
    @inline(__always) public mutating func unit() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    @inline(__always) public mutating func chance(_ p: Double) -> Bool { unit() < p }

    public mutating func uniform(_ lo: Double, _ hi: Double) -> Double { lo + (hi - lo) * unit() }

    /// Exponential with the given mean.
    public mutating func exponential(mean: Double) -> Double { -log(1 - unit()) * mean }

    /// Log-normal with the given median and shape sigma.
    public mutating func logNormal(median: Double, sigma: Double) -> Double { median * exp(sigma * normal()) }

    /// Standard normal (Box-Muller).
    public mutating func normal() -> Double {
        let u1 = max(unit(), 1e-300), u2 = unit()
        return (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2)
    }

    public mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }
}

/// A categorical distribution over names, in a fixed (sorted) order so that draws are deterministic.
public struct Weighted<T: Sendable>: Sendable {
    private let items: [T]
    private let cumulative: [Double]

    public init(_ pairs: [(T, Double)]) {
        let total = pairs.reduce(0) { $0 + max($1.1, 0) }
        var acc = 0.0
        var items: [T] = []
        var cum: [Double] = []
        for (item, w) in pairs where w > 0 {
            acc += w / total
            items.append(item)
            cum.append(acc)
        }
        self.items = items
        self.cumulative = cum
    }

    public var isEmpty: Bool { items.isEmpty }

    public func draw(_ rng: inout Xoshiro) -> T {
        let u = rng.unit()
        for (i, c) in cumulative.enumerated() where u < c { return items[i] }
        return items[items.count - 1]
    }
}
