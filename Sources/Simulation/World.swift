import Events

/// The simulated business: every customer of this shard, merged into one stream in event-time order.
///
/// Deterministic: the same parameters give the same events with the same ids. Customers are independent
/// (each has its own random stream), so a shard's stream is exactly the unsharded stream's events of
/// the customers whose index ≡ shard (mod shard count).
public struct World: Sequence, IteratorProtocol {
    private var customers: [CustomerSim]
    /// Min-heap of (next event time, customer slot).
    private var heap: [(Int64, Int)] = []
    public let incidents: [IncidentWindow]
    public private(set) var emitted = 0

    public init(_ parameters: SimulationParameters) throws(ConfigError) {
        guard parameters.shardCount >= 1, (0..<parameters.shardCount).contains(parameters.shardIndex) else {
            throw ConfigError(key: "shard", message: "expected i/n with 0 ≤ i < n")
        }
        guard parameters.end > parameters.start else { throw ConfigError(key: "until", message: "the end must be after the start") }
        let model = try Model(parameters)
        incidents = model.incidents
        customers = []
        for i in stride(from: parameters.shardIndex, to: parameters.customers, by: parameters.shardCount) {
            customers.append(CustomerSim(index: i, model: model))
        }
        heap.reserveCapacity(customers.count)
        for slot in customers.indices {
            if let t = customers[slot].nextTime() { push((t.ms, slot)) }
        }
    }

    public mutating func next() -> Event? {
        guard !heap.isEmpty else { return nil }
        let (_, slot) = heap[0]
        let event = customers[slot].popEvent()
        if let t = customers[slot].nextTime() {
            heap[0] = (t.ms, slot)
            siftDown(0)
        } else {
            let last = heap.removeLast()
            if !heap.isEmpty {
                heap[0] = last
                siftDown(0)
            }
        }
        emitted += 1
        return event
    }

    /// Ground truth of every customer so far (complete once the stream is exhausted).
    public var truth: [CustomerTruth] { customers.map(\.truth) }

    @inline(__always) private static func less(_ a: (Int64, Int), _ b: (Int64, Int)) -> Bool {
        a.0 < b.0 || (a.0 == b.0 && a.1 < b.1)
    }

    private mutating func push(_ x: (Int64, Int)) {
        heap.append(x)
        var i = heap.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard Self.less(heap[i], heap[parent]) else { break }
            heap.swapAt(i, parent)
            i = parent
        }
    }

    /// Moves the entry at `start` down to its place: children move up into the hole it leaves, and it is
    /// written once, where it stops. (Keys are unique, since slots are, so the order entries leave the heap
    /// in is the order of their keys, whatever the heap's shape.)
    private mutating func siftDown(_ start: Int) {
        var s = heap.mutableSpan
        let n = s.count
        var i = start
        let x = s[i]
        while true {
            let l = 2 &* i &+ 1
            if l >= n { break }
            var m = l
            if l &+ 1 < n && Self.less(s[l &+ 1], s[l]) { m = l &+ 1 }
            guard Self.less(s[m], x) else { break }
            s[i] = s[m]
            i = m
        }
        s[i] = x
    }
}
