/// Consumer lag in seconds, estimated from offsets alone, as kafka-lag-exporter does: the end offset of each
/// partition is sampled with the wall time, and a consumer at offset `o` is as far behind as the time since
/// the partition's end passed `o` (interpolated between the two samples around it).
///
/// Message timestamps cannot be used for this: producers backfilling history stamp messages with their
/// simulated event times, months or years before they were written.
public struct LagClock<Key: Hashable>: Sendable where Key: Sendable {
    struct Sample: Sendable, Equatable {
        var end: Int64
        var seconds: Double
    }

    /// Per key, samples with strictly growing ends, oldest first.
    private var samples: [Key: [Sample]] = [:]
    /// Samples kept per key (the oldest go first): at one sample each 5 s, 256 cover 21 minutes.
    public var capacity = 256

    public init() {}

    /// The partition's end offset was `end` at wall time `seconds`. Samples that do not move the end are
    /// dropped: the end reached that offset at the earlier sample or before.
    public mutating func record(_ key: Key, end: Int64, at seconds: Double) {
        var list = samples[key, default: []]
        if let last = list.last, end <= last.end { return }
        list.append(Sample(end: end, seconds: seconds))
        if list.count > capacity { list.removeFirst(list.count - capacity) }
        samples[key] = list
    }

    /// Forgets a partition (revoked).
    public mutating func remove(_ key: Key) { samples[key] = nil }

    /// How long ago the message at `position` (the next one the consumer will read) was written, at wall time
    /// `now`; 0 when the consumer is at the end. When the end had passed `position` already at the oldest sample
    /// kept, the answer is the time since that sample: a lower bound.
    public func lagSeconds(_ key: Key, position: Int64, now: Double) -> Double {
        guard let list = samples[key], let last = list.last, position < last.end else { return 0 }
        // The message at `position` was written when the end moved past it, to `position + 1`.
        let target = Double(position + 1)
        guard let i = list.firstIndex(where: { $0.end > position }) else { return 0 }
        guard i > 0 else { return max(0, now - list[0].seconds) }
        let (a, b) = (list[i - 1], list[i])
        let fraction = (target - Double(a.end)) / Double(b.end - a.end)
        let written = a.seconds + fraction * (b.seconds - a.seconds)
        return max(0, now - written)
    }
}
