import Events
import Foundation
import Kafka
import Marts

extension ConsumerCore {
    /// Messages prepared before their duplicate-table lines are fetched together (see `MartState.warm`): 32
    /// gave 5-20% more events/s than one at a time in `undercurrent-bench ingest` (BENCHMARKS.md).
    public static let warmBatch = 32

    /// The per-partition half of `apply` for a batch: partitions are shared out to up to `options.threads` threads
    /// as they come free; each partition's messages stay in order on one thread. Returns, per
    /// message, what it gave (nil: not for a partition or topic of this consumer).
    func applyLanes(_ messages: [KafkaMessage], startMs: Int64?) -> [Applied?] {
        // Each message's partition group, looked up once per partition in a table by number, and its topic by
        // comparing the few names: no hashing per message (messages from an archive change partition at nearly
        // every message). A group's partition state is kept once, with the group: not per message, where it was a
        // reference retained and released a message.
        var groupOf = PartitionTable(empty: -2)  // -2: not looked up yet; -1: not open
        var parts: [Partition] = []
        var byPartition: [[Int]] = []
        var topics = [InputTopic?](repeating: nil, count: messages.count)
        let m = messages.span
        for i in m.indices {
            let partition = m[i].partition
            var g = groupOf[partition]
            if g == -2 {
                g = -1
                if let part = partitions[partition] {
                    g = parts.count
                    parts.append(part)
                    byPartition.append([])
                }
                groupOf[partition] = g
            }
            guard g >= 0, let topic = inputTopic(named: m[i].topic) else { continue }
            topics[i] = topic
            byPartition[g].append(i)
        }
        // (A partition may have only messages of other topics: no group for it.)
        let ordered = byPartition.indices.filter { !byPartition[$0].isEmpty }.sorted { byPartition[$0].count > byPartition[$1].count }
        let groups = ordered.map { byPartition[$0] }
        let groupParts = ordered.map { parts[$0] }
        let threads = max(1, min(options.threads, groups.count, messages.count / 64))
        // Each thread takes the next partition's messages, largest first, until none are left: a thread that
        // finishes early takes more (a fixed split left one thread idle for 14% of the run, measured).
        let resolved = topics
        let alertingOn = alerting != nil
        let results = LaneResults(lanes: threads, groups: groups.count)
        let work = { [self] (lane: Int) in
            let started = ContinuousClock.now
            var out: [(Int, Applied)] = []
            var prepared: [MartState.Prepared] = []
            prepared.reserveCapacity(Self.warmBatch)
            while let g = results.nextGroup() {
                // A group is one partition's messages: prepared a slice at a time, the slice's duplicate-table
                // lines fetched together (`MartState.warm`), then applied in order.
                let group = groups[g]
                let part = groupParts[g]
                var k = 0
                while k < group.count {
                    let slice = group[k..<min(k + Self.warmBatch, group.count)]
                    // The fields each step needs, not the message: passing `m[i]` whole copied it (a retain per
                    // field, through the type's value witness) twice a message, 4% of a replay's instructions.
                    let m = messages.span
                    // Prepared last message first, then taken off the end in message order: `popLast` moves each
                    // out, where reading `prepared[j]` copied it.
                    for i in slice.reversed() {
                        prepared.append(prepare(topic: resolved[i]!, value: m[i].value, key: m[i].key,
                                                timestampMs: m[i].timestampMs, startMs: startMs))
                    }
                    part.state.warm(prepared.span)
                    for i in slice {
                        let keepEvent = alertingOn && resolved[i]! == .payments  // for the alert engine
                        let at = Position(topic: m[i].topic, partition: m[i].partition, offset: m[i].offset, timestampMs: m[i].timestampMs)
                        out.append((i, apply(part: part, at: at, prepared.removeLast(), keepEvent: keepEvent)))
                    }
                    k = slice.endIndex
                }
            }
            results.store(lane, out, seconds: (ContinuousClock.now - started).seconds)
        }
        if threads == 1 {
            work(0)
        } else {
            // Each lane touches only its own partitions' states (see `apply`) and its own result slot.
            let box = UncheckedSendable(work)
            DispatchQueue.concurrentPerform(iterations: threads) { box.value($0) }
            summary.parallelBatches += 1
            summary.idleLaneSeconds += results.idleSeconds
        }
        var applied = [Applied?](repeating: nil, count: messages.count)
        for lane in results.take() { for (i, a) in lane { applied[i] = a } }
        return applied
    }
}

/// Per-lane results of `applyLanes`, each lane written by one thread, read after they all finished.
private final class LaneResults: @unchecked Sendable {
    private let lock = NSLock()
    private var lanes: [[(Int, ConsumerCore.Applied)]]
    private var seconds: [Double]
    private let groups: Int
    private var taken = 0
    init(lanes: Int, groups: Int) {
        self.lanes = Array(repeating: [], count: lanes)
        seconds = Array(repeating: 0, count: lanes)
        self.groups = groups
    }
    /// The next group of messages to apply, or nil when all are taken.
    func nextGroup() -> Int? {
        lock.withLock {
            guard taken < groups else { return nil }
            defer { taken += 1 }
            return taken
        }
    }
    func store(_ lane: Int, _ results: [(Int, ConsumerCore.Applied)], seconds s: Double) {
        lock.withLock {
            lanes[lane] = results
            seconds[lane] = s
        }
    }
    func take() -> [[(Int, ConsumerCore.Applied)]] { lock.withLock { lanes } }
    /// How long the fastest lane waited for the slowest.
    var idleSeconds: Double { lock.withLock { (seconds.max() ?? 0) - (seconds.min() ?? 0) } }
}

private struct UncheckedSendable<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
