import Events

/// The marts of one input partition: a pure state machine fed with decoded events.
///
/// Results depend only on the set of accepted event ids: additive numbers are added per event; numbers
/// that depend on a customer's other events (reactivations, cohorts, failure-to-churn, recovery
/// attribution) are kept as that customer's contribution, retracted and re-added when its events change.
public struct MartState: Sendable {
    public private(set) var customers = CustomerTable()
    public private(set) var aggregates = Aggregates()
    /// Exact duplicate detection (see `SeenEvents`).
    public private(set) var seen = SeenEvents()
    public private(set) var accepted = 0
    public private(set) var duplicates = 0
    public private(set) var rejected = 0
    public private(set) var minTime: Timestamp?
    public private(set) var maxTime: Timestamp?
    /// Fingerprints accepted since `takeChanges()`, for incremental checkpoints (the customer table tracks
    /// which customers changed).
    public private(set) var newSlots: [(UInt64, UInt64)] = []
    /// When time alone may change a customer's risk segment: customers by the day to re-assess them, the
    /// day each customer is due, and the last day swept. Derived from `customers`; rebuilt on the first
    /// sweep after a restore, so not checkpointed.
    /// Customers are their rows in `customers` (rows never move): no hashing of ids per event.
    private var riskChecks: [Int64: [Int32]] = [:]
    /// Per row, the day it is due, or `Int64.min`; rows beyond the end have none.
    private var riskCheckDay: [Int64] = []
    private var riskSweptThrough: Int64?
    /// Customers (rows) still to schedule after a restore, a slice per sweep so that the first event after a
    /// restart does not wait for all of them.
    private var riskBacklog: [Int32] = []
    /// What `warm` read, kept so that its loads are not optimised away.
    private var warmed: UInt64 = 0

    public init() {}

    /// How many customers are kept unpacked at once (see `CustomerTable`).
    public var hotCustomerCapacity: Int {
        get { customers.hotCapacity }
        set { customers.hotCapacity = newValue }
    }

    public enum Outcome: Equatable, Sendable {
        case accepted
        case duplicate
        case rejected(Rejection)
        /// Valid, but after the as-of limit (`until`): not applied.
        case afterLimit
    }

    /// Decodes, validates, de-duplicates and applies one message value. Events after `until` are not applied.
    public mutating func ingest(value: ArraySlice<UInt8>, topic: InputTopic?, key: ArraySlice<UInt8>?,
                                until: Timestamp? = nil, requireKey: Bool = false) -> (Outcome, Event?) {
        let prepared = Self.prepare(value: value, topic: topic, key: key, until: until, requireKey: requireKey)
        let outcome = commit(prepared)
        return (outcome, prepared.event(after: outcome))
    }

    private static let missingKey = Rejection(.missingKey, "no Kafka key: events are keyed by customer_id so that each customer stays in one partition")

    /// A message decoded and validated, not yet applied: the part of `ingest` that needs no state, so that a
    /// batch can be prepared first and its table lines fetched together (see `warm`).
    public struct Prepared: Sendable {
        /// The event when it is valid; `Prepared.none` when it is not (see `rejection`). Not optional, so that
        /// `commit` can hand it on without copying it.
        public let event: Event
        /// Why the message is not a valid event (nil: it is).
        public let rejection: Rejection?
        /// Valid, but after the as-of limit.
        let afterLimit: Bool
        /// Not to be committed: a placeholder for a message its caller skips (see `ignored`).
        public let isIgnored: Bool
        /// The event's duplicate-table slot (see `SeenEvents.slot`).
        let key: UInt64
        let check: UInt64

        /// The event as `ingest` returns it after `outcome`: when it was applied, or valid but after the limit.
        public func event(after outcome: Outcome) -> Event? {
            outcome == .accepted || outcome == .afterLimit ? event : nil
        }

        /// A message its caller does not apply (one before the consumer's start time), kept in a batch in
        /// its place; `commit` must not be called on it.
        public static let ignored = Prepared(rejection: nil, isIgnored: true)

        static let none = Event(eventID: "", occurredAt: Timestamp(ms: 0), customerID: "", payload: .cancelIntent(source: .cancelPage))
        init(rejection: Rejection?, isIgnored: Bool = false) {
            (event, self.rejection, afterLimit, self.isIgnored, key, check) = (Self.none, rejection, false, isIgnored, 0, 0)
        }
        init(event: Event, afterLimit: Bool, key: UInt64, check: UInt64) {
            (self.event, rejection, self.afterLimit, isIgnored, self.key, self.check) = (event, nil, afterLimit, false, key, check)
        }
    }

    public static func prepare(value: ArraySlice<UInt8>, topic: InputTopic?, key: ArraySlice<UInt8>?,
                               until: Timestamp? = nil, requireKey: Bool = false) -> Prepared {
        if requireKey && key == nil { return Prepared(rejection: missingKey) }
        switch EventDecoder.decode(value, topic: topic, key: key) {
        case let .failure(r):
            return Prepared(rejection: r)
        case let .success(event) where until.map({ event.occurredAt > $0 }) ?? false:
            return Prepared(event: event, afterLimit: true, key: 0, check: 0)
        case let .success(event):
            let (key, check) = SeenEvents.slot(EventFingerprint(event.eventID), valueHash: ValueHash.of(value))
            return Prepared(event: event, afterLimit: false, key: key, check: check)
        }
    }

    /// Reads the duplicate-table line of each prepared event, one load each and none waiting on another, so
    /// that the processor fetches them from memory together instead of one per event as `commit` would
    /// (the table is tens of megabytes: each event's line is a cache miss). Changes nothing `commit` computes.
    public mutating func warm(_ batch: borrowing Span<Prepared>) {
        var sink: UInt64 = 0
        for i in 0..<batch.count where batch[i].key != 0 { sink ^= seen.peek(key: batch[i].key) }
        warmed ^= sink
    }

    /// Applies a prepared message: counts a rejection, or de-duplicates and applies its event.
    /// `p.event(after:)` is then the event `ingest` would have returned.
    public mutating func commit(_ p: borrowing Prepared) -> Outcome {
        precondition(!p.isIgnored, "an ignored message is not committed")
        if let r = p.rejection {
            rejected += 1
            return .rejected(r)
        }
        if p.afterLimit { return .afterLimit }
        return apply(p.event, key: p.key, check: p.check)
    }

    /// Applies a validated event. `valueHash` identifies its exact bytes, for the conflict rule.
    public mutating func apply(_ event: Event, valueHash: UInt64) -> Outcome {
        let (key, check) = SeenEvents.slot(EventFingerprint(event.eventID), valueHash: valueHash)
        return apply(event, key: key, check: check)
    }

    private mutating func apply(_ event: Event, key: UInt64, check: UInt64) -> Outcome {
        switch seen.insert(key: key, check: check) {
        case .duplicate:
            duplicates += 1
            return .duplicate
        case .conflict:
            rejected += 1
            return .rejected(Rejection(.conflictingDuplicate, "event_id \(event.eventID) was accepted before with a different value"))
        case .new:
            newSlots.append((key, check))
        }
        accepted += 1
        if minTime.map({ event.occurredAt < $0 }) ?? true { minTime = event.occurredAt }
        if maxTime.map({ event.occurredAt > $0 }) ?? true { maxTime = event.occurredAt }
        // Mutated in place: copying the customer out and back would copy its nested collections on every event.
        let asOf = maxTime!
        customers.update(event.customerID, &aggregates) { c, a in Contributions.apply(event, to: &c, aggregates: &a, asOf: asOf) }
        return .accepted
    }

    /// A customer's risk segment change since the last one announced, assessed at this partition's as-of
    /// (its newest event time); nil when the segment is unchanged. Records the new segment as announced, and
    /// when time alone may next change the assessment (see `timeDrivenRiskChanges`).
    public mutating func riskChange(of customerID: String) -> RiskChange? {
        guard let row = customers.row(of: customerID) else { return nil }
        return riskChange(row: row)
    }

    private mutating func riskChange(row: Int) -> RiskChange? {
        guard let asOf = maxTime else { return nil }
        let (next, segment, previous) = customers.inspect(row: row) { c in
            (RiskModel.nextChange(c, asOf: asOf), RiskModel.segment(c, asOf: asOf), c.announcedSegment ?? .low)
        }
        scheduleRiskCheck(row, next)
        guard segment != previous else { return nil }
        let customerID = customers.id(atRow: row)
        let (assessment, mrr) = customers.inspect(row: row) { c in (RiskModel.assess(c, asOf: asOf), c.currentMrr) }
        customers.update(customerID) { $0.announcedSegment = assessment.segment }  // checkpointed with the customer
        return RiskChange(customerID: customerID, previous: previous, assessment: assessment, mrrCents: mrr, asOf: asOf)
    }

    /// Segment changes caused by time alone (a failure or cancel intent ageing out of its window, use going
    /// quiet): re-assesses the customers due since the last call, at most a day after the moment their
    /// assessment could change. Cheap when nothing is due; call it after applying events.
    public mutating func timeDrivenRiskChanges() -> [RiskChange] {
        guard let asOf = maxTime else { return [] }
        let today = asOf.ms / Timestamp.millisecondsPerDay
        guard let swept = riskSweptThrough else {
            // First sweep of this state (new, or restored from a checkpoint): every customer is to be scheduled.
            riskSweptThrough = today
            riskBacklog = Array(0..<Int32(customers.count))
            return []
        }
        for _ in 0..<min(riskBacklog.count, 4096) {
            let row = Int(riskBacklog.removeLast())
            if riskCheckDay(row) == nil {
                scheduleRiskCheck(row, customers.inspect(row: row) { RiskModel.nextChange($0, asOf: asOf) })
            }
        }
        guard today > swept else { return [] }
        riskSweptThrough = today
        var due: [Int32] = []
        if today - swept <= Int64(riskChecks.count) {
            for day in (swept + 1)...today { due += takeRiskChecks(day) }
        } else {
            for day in riskChecks.keys.filter({ $0 <= today }).sorted() { due += takeRiskChecks(day) }
        }
        return due.compactMap { riskChange(row: Int($0)) }
    }

    private func riskCheckDay(_ row: Int) -> Int64? {
        row < riskCheckDay.count && riskCheckDay[row] != Int64.min ? riskCheckDay[row] : nil
    }

    private mutating func takeRiskChecks(_ day: Int64) -> [Int32] {
        guard let rows = riskChecks.removeValue(forKey: day) else { return [] }
        return rows.filter { row in
            guard riskCheckDay(Int(row)) == day else { return false }  // re-scheduled since
            riskCheckDay[Int(row)] = Int64.min
            return true
        }
    }

    private mutating func scheduleRiskCheck(_ row: Int, _ at: Int64?) {
        guard let at else {
            if row < riskCheckDay.count { riskCheckDay[row] = Int64.min }
            return
        }
        if row >= riskCheckDay.count {
            riskCheckDay.append(contentsOf: repeatElement(Int64.min, count: Swift.max(customers.count, row + 1) - riskCheckDay.count))
        }
        let day = at / Timestamp.millisecondsPerDay + 1
        guard riskCheckDay[row] != day else { return }
        riskCheckDay[row] = day
        riskChecks[day, default: []].append(Int32(row))
    }

    /// The customers changed since the last `takeChanges()` (the last checkpoint), by id.
    public var changedCustomerIDs: [String] { customers.changedIDs }

    /// Hands over what changed since the last call (for a checkpoint) and starts a new change set.
    /// Customers come packed (`CustomerCodec`).
    public mutating func takeChanges() -> (customers: [(String, [UInt8])], slots: [(UInt64, UInt64)]) {
        let changed = customers.takeChanged()
        let slots = newSlots
        newSlots.removeAll(keepingCapacity: true)
        return (changed, slots)
    }

    public struct Counters: Sendable, Equatable, Codable {
        public var accepted: Int
        public var duplicates: Int
        public var rejected: Int
        public var minTime: Int64?
        public var maxTime: Int64?
        public init(accepted: Int, duplicates: Int, rejected: Int, minTime: Int64?, maxTime: Int64?) {
            self.accepted = accepted
            self.duplicates = duplicates
            self.rejected = rejected
            self.minTime = minTime
            self.maxTime = maxTime
        }
    }

    public var counters: Counters {
        Counters(accepted: accepted, duplicates: duplicates, rejected: rejected, minTime: minTime?.ms, maxTime: maxTime?.ms)
    }

    /// Rebuilds a state from checkpointed parts.
    public init(counters: Counters, aggregates: Aggregates, customers: CustomerTable, seen: SeenEvents) {
        self.customers = customers
        self.seen = seen
        self.aggregates = aggregates
        accepted = counters.accepted
        duplicates = counters.duplicates
        rejected = counters.rejected
        minTime = counters.minTime.map { Timestamp(ms: $0) }
        maxTime = counters.maxTime.map { Timestamp(ms: $0) }
    }
}

/// 128 bits of an event id: two independent 64-bit hashes. Two different ids collide with probability
/// about n²/2^129 (for 10^9 ids, 10^-21); this is the only approximation in duplicate detection.
///
/// Each hash takes the id eight bytes at a time, one 64×64→128-bit multiply per word (the `ValueHash`
/// step), so an id of 13 bytes costs two steps per hash instead of 13 dependent byte steps. Every byte of
/// the word constants has its high bit set, so no word of an id (ASCII, zero-padded) cancels one: a step
/// never multiplies by zero. Fingerprints are stored in checkpoints: changing them changes the checkpoint
/// format version.
public struct EventFingerprint: Hashable, Sendable {
    public var a: UInt64
    public var b: UInt64
    public init(a: UInt64, b: UInt64) {
        self.a = a
        self.b = b
    }
    public init(_ id: String) {
        let s = id.utf8.span
        let n = s.count
        var h1: UInt64 = 0x243F_6A88_85A3_08D3 ^ UInt64(truncatingIfNeeded: n)
        var h2: UInt64 = 0x1319_8A2E_0370_7344 ^ (UInt64(truncatingIfNeeded: n) &* 0x9E37_79B9_7F4A_7C15)
        var i = 0
        while i < n {
            let w = ByteWords.loadWordOrTail(s, i)
            h1 = mum(w ^ 0xA4C1_D3B7_E58F_9A86, h1 ^ 0xE703_7ED1_A0B4_28DB)
            h2 = mum(w ^ 0xC6A9_F1B3_8DE5_97C2, h2 ^ 0x8EBC_6AF0_9C88_C6E3)
            i += 8
        }
        a = SeenEvents.mix(h1)
        b = SeenEvents.mix(h2 ^ 0x5899_65CC_7537_4CC3)
    }
}

/// The 128-bit product of two words folded to 64 bits: the step of `ValueHash`, `EventFingerprint` and the
/// customer index hash.
@inline(__always) func mum(_ x: UInt64, _ y: UInt64) -> UInt64 {
    let (hi, lo) = x.multipliedFullWidth(by: y)
    return hi ^ lo
}

/// A 64-bit hash of a message value's exact bytes, for the conflict rule: 16 bytes per step, each step one
/// 64×64→128-bit multiply folded to 64 bits (the wyhash construction). Stored in checkpoints (the low 32 bits
/// of each accepted event's slot), so changing it changes the checkpoint format version.
public enum ValueHash {
    private static let p0: UInt64 = 0xA076_1D64_78BD_642F
    private static let p1: UInt64 = 0xE703_7ED1_A0B4_28DB
    private static let p2: UInt64 = 0x8EBC_6AF0_9C88_C6E3
    private static let p3: UInt64 = 0x5899_65CC_7537_4CC3

    public static func of(_ bytes: [UInt8]) -> UInt64 { of(bytes.span) }
    public static func of(_ bytes: ArraySlice<UInt8>) -> UInt64 { of(bytes.span) }

    public static func of(_ s: borrowing Span<UInt8>) -> UInt64 {
        let n = s.count
        var h = p0 ^ UInt64(truncatingIfNeeded: n)
        var i = 0
        while i + 16 <= n {
            h = mum(ByteWords.load(s, i) ^ p1 ^ h, ByteWords.load(s, i + 8) ^ p2)
            i += 16
        }
        let w0: UInt64, w1: UInt64
        if n >= 16 {
            // The last 16 bytes, overlapping the blocks already hashed.
            w0 = ByteWords.load(s, n - 16)
            w1 = ByteWords.load(s, n - 8)
        } else if n >= 8 {
            w0 = ByteWords.load(s, 0)
            w1 = ByteWords.loadPartial(s, 8, n - 8)
        } else {
            w0 = ByteWords.loadPartial(s, 0, n)
            w1 = 0
        }
        h = mum(w0 ^ p3 ^ h, w1 ^ p1 ^ UInt64(truncatingIfNeeded: n))
        return mum(h ^ p2, h ^ p0)
    }
}
