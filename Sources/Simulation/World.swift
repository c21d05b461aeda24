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
/// (each has its own random stream), and events leave in the order (time, customer index, decision order),
/// so a shard's stream is exactly the unsharded stream's events of the customers whose
/// index ≡ shard (mod shard count).
///
/// The stream is made one time window at a time: each customer with something due in the window is run to
/// its end once, in index order, putting its events in one buffer, which is then sorted by time (stably, so
/// ties keep customer and decision order). A customer's state is touched once a window instead of once an
/// event, and the events are read from one buffer the size of a cache instead of from every customer's
/// queue. The window's length adapts so that it holds a few thousand events; it changes how the work is
/// grouped, never the stream.
public struct World: Sequence, IteratorProtocol {
    private var customers: [CustomerSim]
    /// Per customer slot: the time of its next pending event or action (`Int64.max`: none).
    private var nextTimes: [Int64]
    /// The earliest of `nextTimes`: where the next window starts.
    private var earliest: Int64
    /// The current window's events, customer after customer (a customer's events of equal time in decision
    /// order).
    private var window: [CustomerSim.Pending] = []
    /// The window's events in time order (stably sorted: ties keep customer and decision order).
    private var order = TimeOrder()
    private var position = 0
    private var windowMs: Int64 = 6 * 3_600_000
    /// Events a window aims at: enough that visiting the customers stays cheap next to emitting the
    /// events, few enough that the window's buffer stays in the core's cache.
    private let windowEvents: Int
    public let incidents: [IncidentWindow]
    public private(set) var emitted = 0

    /// `windowEvents`: how many events a window aims at (nil: chosen for the number of customers). It changes
    /// the memory and time the stream takes, and how far ahead of its events the world decides them (a storm
    /// switched on applies to attempts decided after it), never the stream.
    public init(_ parameters: SimulationParameters, windowEvents: Int? = nil) throws(ConfigError) {
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
        nextTimes = customers.map(\.nextActionTime)  // each customer's signup
        earliest = nextTimes.min() ?? .max
        // Measured on `undercurrent-bench sim`: 3,000 beat 1,500 and 12,000 with 20,000 customers; with
        // 100,000, 12,500 beat 3,000 (the scan of `nextTimes` weighs more) and 25,000. A storm can be switched
        // on at any moment (load tests): smaller windows let it reach attempts sooner.
        let chosen = parameters.storm == nil ? Swift.max(3_000, customers.count / 8) : 500
        self.windowEvents = Swift.max(1, windowEvents ?? chosen)
    }

    /// The window entry of the next event, filling the next window when the current one is done; nil at the end.
    @inline(__always) private mutating func nextIndex() -> Int? {
        if position == order.count {
            guard fill() else { return nil }
        }
        return order.index(at: position)
    }

    public mutating func next() -> Event? {
        guard let i = nextIndex() else { return nil }
        moveOn()
        return window[i].event
    }

    /// What the next event is routed by (its type, and so its topic; its customer, the Kafka key; its time),
    /// read without copying the event; nil at the end of the stream.
    public mutating func peekNext() -> NextEvent? {
        guard let i = nextIndex() else { return nil }
        return NextEvent(type: window[i].type, customerID: window[i].event.customerID, occurredAt: Timestamp(ms: window[i].time))
    }

    /// Appends the next event's JSON to `out` (the bytes `encoder.encode(next()!, into: &out)` appends) and
    /// moves past it; false, appending nothing, at the end of the stream. The event is encoded where it lies
    /// in the window's buffer: returning it copied it and retained its strings, and the caller then destroyed
    /// it through its value witnesses, about 300 instructions an event in all.
    public mutating func encodeNext(_ encoder: inout EventEncoder.Reusable, into out: inout [UInt8]) -> Bool {
        guard let i = nextIndex() else { return false }
        encoder.encode(inPlace: &window[i].event, into: &out)
        moveOn()
        return true
    }

    /// Moves past the next event (a producer skips the events of the topics it does not produce); false at the end.
    public mutating func skipNext() -> Bool {
        guard nextIndex() != nil else { return false }
        moveOn()
        return true
    }

    @inline(__always) private mutating func moveOn() {
        position += 1
        emitted += 1
    }

    /// Ground truth of every customer so far (complete once the stream is exhausted).
    public var truth: [CustomerTruth] { customers.map(\.truth) }

    /// Makes the next non-empty window; false when no customer has anything left.
    private mutating func fill() -> Bool {
        window.removeAll(keepingCapacity: true)
        position = 0
        while window.isEmpty {
            guard earliest != .max else {
                order.removeAll()
                return false
            }
            let start = earliest
            let end = start &+ windowMs
            var nextEarliest = Int64.max
            for slot in nextTimes.indices {
                var t = nextTimes[slot]
                if t < end {
                    t = customers[slot].advance(until: end, into: &window)
                    nextTimes[slot] = t
                }
                nextEarliest = Swift.min(nextEarliest, t)
            }
            earliest = nextEarliest
            // Aim the next window at `windowEvents`: event density changes slowly (growth, bursts).
            let n = window.count
            var ms = n == 0 ? windowMs * 2 : windowMs * Int64(windowEvents) / Int64(n)
            ms = Swift.min(Swift.max(ms, windowMs / 2), windowMs * 2)
            windowMs = Swift.min(Swift.max(ms, 1_000), 30 * 86_400_000)
            if !window.isEmpty {
                order.sort(window.lazy.map(\.time), start: start, span: end &- start)
            }
        }
        return true
    }
}
