import Events

/// What a producer needs to know of the next event besides its JSON (`World.peekNext`).
public struct NextEvent: Sendable, Equatable {
    public let type: EventType
    public let customerID: String
    public let occurredAt: Timestamp
    public var topic: InputTopic { type.topic }

    public init(type: EventType, customerID: String, occurredAt: Timestamp) {
        self.type = type
        self.customerID = customerID
        self.occurredAt = occurredAt
    }
}

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
        guard let (_, slot) = heap.first else { return nil }
        let event = customers[slot].popEvent()
        reschedule(slot)
        return event
    }

    /// What the next event is routed by (its type, and so its topic; its customer, the Kafka key; its time),
    /// read without copying the event; nil at the end of the stream.
    public func peekNext() -> NextEvent? {
        guard let (_, slot) = heap.first else { return nil }
        let (type, ms) = customers[slot].peekNext()
        return NextEvent(type: type, customerID: customers[slot].id, occurredAt: Timestamp(ms: ms))
    }

    /// Appends the next event's JSON to `out` (the bytes `encoder.encode(next()!, into: &out)` appends) and
    /// moves past it; false, appending nothing, at the end of the stream. The event is encoded where it lies
    /// in its customer's queue: returning it copied it three times and retained its strings, and the caller
    /// then destroyed it through its value witnesses, about 300 instructions an event in all.
    public mutating func encodeNext(_ encoder: inout EventEncoder.Reusable, into out: inout [UInt8]) -> Bool {
        guard let (_, slot) = heap.first else { return false }
        customers[slot].encodeNextEvent(&encoder, into: &out)
        reschedule(slot)
        return true
    }

    /// Moves past the next event (a producer skips the events of the topics it does not produce); false at the end.
    public mutating func skipNext() -> Bool {
        guard let (_, slot) = heap.first else { return false }
        customers[slot].skipNextEvent()
        reschedule(slot)
        return true
    }

    /// After `slot`'s event at the top of the heap was taken: the customer's next time, or its removal.
    private mutating func reschedule(_ slot: Int) {
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
