import Events

/// Orders events of one customer: by event time, ties by `event_id` bytes (marts.md).
public struct EventKey: Comparable, Hashable, Sendable {
    public var time: Int64
    public var id: String
    public init(_ time: Timestamp, _ id: String) {
        self.time = time.ms
        self.id = id
    }
    public init(time: Int64, id: String) {
        self.time = time
        self.id = id
    }
    public static func < (a: EventKey, b: EventKey) -> Bool {
        a.time != b.time ? a.time < b.time : a.id.utf8.lexicographicallyPrecedes(b.id.utf8)
    }
}

/// A subscription event kept per customer (there are few): MRR movements, plan and status derive from them.
public struct SubscriptionEvent: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        case started(plan: Plan, mrr: Cents)
        case changed(from: Cents, to: Cents, toPlan: Plan)
        case canceled(Cancellation, mrr: Cents)
    }
    public var key: EventKey
    public var kind: Kind
    public init(key: EventKey, kind: Kind) {
        self.key = key
        self.kind = kind
    }
}

/// Flags and counts of one customer in one month.
public struct MonthFlags: Sendable, Equatable {
    public static let active: UInt8 = 1, coreActive: UInt8 = 2, billed: UInt8 = 4, cancelIntent: UInt8 = 8
    public static let failed: UInt8 = 16, canceled: UInt8 = 32, canceledInvoluntary: UInt8 = 64, paid: UInt8 = 128
    public var flags: UInt8 = 0
    /// Paid plans with a payment.succeeded this month (bit = plan rank).
    public var paidPlans: UInt8 = 0
    /// Failure reasons seen this month (bit = reason index).
    public var reasons: UInt16 = 0
    public var featureEvents: Int32 = 0
    public init() {}
    public func has(_ f: UInt8) -> Bool { flags & f != 0 }
}

public struct InvoiceState: Sendable, Equatable {
    /// Months with an attempt, each with the plans of its attempts (bit = plan rank).
    public var attemptMonths = AttemptMonths()
    public var failed = false
    /// The failed attempt with the lowest `attempt` (ties: earliest key).
    public var firstFailure: (attempt: Int, key: EventKey, reason: FailureReason)?
    /// The earliest `invoice.paid` / `invoice.uncollectible`.
    public var end: (key: EventKey, paid: Bool, attempts: Int, amount: Cents)?
    public init() {}

    public static func == (a: InvoiceState, b: InvoiceState) -> Bool {
        a.attemptMonths == b.attemptMonths && a.failed == b.failed
            && a.firstFailure?.attempt == b.firstFailure?.attempt && a.firstFailure?.key == b.firstFailure?.key
            && a.firstFailure?.reason == b.firstFailure?.reason
            && a.end?.key == b.end?.key && a.end?.paid == b.end?.paid && a.end?.attempts == b.end?.attempts
            && a.end?.amount == b.end?.amount
    }
}

/// Everything the marts need to know about one customer. Every aggregate is a sum of per-customer
/// contributions computed from this state, which is what makes late and reordered events exact.
public struct CustomerState: Sendable, Equatable {
    public var signedUpAt: Timestamp?
    public var signedUpKey: EventKey?
    public var subscriptions: [SubscriptionEvent] = []
    public var invoices = InvoiceList()
    public var months = MonthTable()
    public var lifetimeRevenue: Cents = 0
    public var invoicesIssued: Int32 = 0
    public var invoicesPaid: Int32 = 0
    public var invoicesUncollectible: Int32 = 0
    public var paymentsFailed: Int32 = 0
    public var cancelIntents: Int32 = 0
    public var lastFailure: (key: EventKey, reason: FailureReason)?
    public var firstCoreUse: Timestamp?
    public var lastActive: Timestamp?
    public var lastCoreUse: Timestamp?
    /// Times of `feature.used` not older than 30 days before this partition's as-of (older ones can
    /// never count again: as-of only grows).
    public var recentFeatureTimes: [Int64] = []
    /// Recent failures for the risk model: (time, hard decline).
    public var recentFailures: [(time: Int64, hard: Bool)] = []
    public var recentCancelIntents: [Int64] = []
    /// The risk segment last announced on the changelog (nil: none yet, read as `low`).
    public var announcedSegment: RiskModel.Segment?

    public init() {}

    public static func == (a: CustomerState, b: CustomerState) -> Bool {
        a.signedUpAt == b.signedUpAt && a.signedUpKey == b.signedUpKey && a.subscriptions == b.subscriptions
            && a.invoices == b.invoices && a.months == b.months && a.lifetimeRevenue == b.lifetimeRevenue
            && a.invoicesIssued == b.invoicesIssued && a.invoicesPaid == b.invoicesPaid
            && a.invoicesUncollectible == b.invoicesUncollectible && a.paymentsFailed == b.paymentsFailed
            && a.cancelIntents == b.cancelIntents && a.lastFailure?.key == b.lastFailure?.key
            && a.lastFailure?.reason == b.lastFailure?.reason && a.firstCoreUse == b.firstCoreUse
            && a.lastActive == b.lastActive && a.lastCoreUse == b.lastCoreUse
            && a.recentFeatureTimes == b.recentFeatureTimes
            && a.recentFailures.map(\.time) == b.recentFailures.map(\.time)
            && a.recentFailures.map(\.hard) == b.recentFailures.map(\.hard)
            && a.recentCancelIntents == b.recentCancelIntents && a.announcedSegment == b.announcedSegment
    }

    // MARK: Derived values

    /// The latest subscription event (time, then event_id).
    public var latestSubscription: SubscriptionEvent? { subscriptions.last }

    public var currentPlan: Plan {
        switch latestSubscription?.kind {
        case nil, .canceled?: .free
        case let .started(plan, _)?: plan
        case let .changed(_, _, plan)?: plan
        }
    }

    public var currentMrr: Cents {
        switch latestSubscription?.kind {
        case nil, .canceled?: 0
        case let .started(_, mrr)?: mrr
        case let .changed(_, to, _)?: to
        }
    }

    public var isPastDue: Bool { invoices.values.contains { $0.failed && $0.end == nil } }

    public enum Status: String, Sendable { case free, canceled, pastDue = "past_due", active }

    public var status: Status {
        guard let latest = latestSubscription else { return .free }
        if case .canceled = latest.kind { return .canceled }
        return isPastDue ? .pastDue : .active
    }

    /// MRR at the end of `month` (subscription events up to the month's end, in event order).
    public func mrr(atEndOf month: Month) -> Cents {
        let end = month.next.start.ms
        var mrr: Cents = 0
        for s in subscriptions where s.key.time < end {
            switch s.kind {
            case let .started(_, m): mrr = m
            case let .changed(_, to, _): mrr = to
            case .canceled: mrr = 0
            }
        }
        return mrr
    }

    /// Activated: first core use within 14 days (inclusive) after signup.
    public var ttvMilliseconds: Int64? {
        guard let s = signedUpAt, let c = firstCoreUse else { return nil }
        let d = c.ms - s.ms
        return d >= 0 && d <= 14 * Timestamp.millisecondsPerDay ? d : nil
    }

    public func featureEvents30d(asOf: Timestamp) -> Int {
        let from = asOf.ms - 30 * Timestamp.millisecondsPerDay
        return recentFeatureTimes.reduce(0) { $0 + ($1 > from && $1 <= asOf.ms ? 1 : 0) }
    }

    public func isZombie(asOf: Timestamp) -> Bool {
        guard status == .active || status == .pastDue else { return false }
        let from = asOf.ms - 30 * Timestamp.millisecondsPerDay
        guard let core = lastCoreUse else { return true }
        return !(core.ms > from && core.ms <= asOf.ms)
    }

    mutating func insertSubscription(_ e: SubscriptionEvent) {
        var i = subscriptions.count
        while i > 0 && e.key < subscriptions[i - 1].key { i -= 1 }
        subscriptions.insert(e, at: i)
    }
}

extension Plan {
    /// 0 = all, 1-3 = paid plans (standard, premium, enterprise).
    public var rank: Int { switch self { case .free: 0; case .standard: 1; case .premium: 2; case .enterprise: 3 } }
}

extension FailureReason {
    private static let indices = Dictionary(uniqueKeysWithValues: FailureReason.allCases.enumerated().map { ($1, $0) })
    public var index: Int { FailureReason.indices[self]! }
}

/// A customer's `MonthFlags` by month index: a dense array from its first month to its last, so a look-up
/// is an index, not a hash. A month with no flags and no events reads as absent (nil).
public struct MonthTable: Sendable {
    private var base: Int32 = 0
    private var items: [MonthFlags] = []

    public init() {}

    public subscript(month: Int32) -> MonthFlags? {
        get {
            let i = Int(month - base)
            guard i >= 0, i < items.count else { return nil }
            let f = items[i]
            return f.isEmpty ? nil : f
        }
        set {
            let value = newValue ?? MonthFlags()
            if items.isEmpty {
                if value.isEmpty { return }
                base = month
                items = [value]
                return
            }
            var i = Int(month - base)
            if i < 0 {
                if value.isEmpty { return }
                items.insert(contentsOf: repeatElement(MonthFlags(), count: -i), at: 0)
                base = month
                i = 0
            } else if i >= items.count {
                if value.isEmpty { return }
                items.append(contentsOf: repeatElement(MonthFlags(), count: i - items.count + 1))
            }
            items[i] = value
        }
    }

    public subscript(month: Int32, default defaultValue: MonthFlags) -> MonthFlags {
        get { self[month] ?? defaultValue }
        set { self[month] = newValue }
    }

    /// The months with flags or events, in order.
    public var entries: [(Int32, MonthFlags)] {
        items.enumerated().compactMap { $0.element.isEmpty ? nil : (base + Int32($0.offset), $0.element) }
    }
}

extension MonthTable: Equatable {
    public static func == (a: MonthTable, b: MonthTable) -> Bool {
        a.entries.elementsEqual(b.entries) { $0.0 == $1.0 && $0.1 == $1.1 }
    }
}

extension MonthFlags {
    var isEmpty: Bool { flags == 0 && paidPlans == 0 && reasons == 0 && featureEvents == 0 }
}

/// The months in which an invoice had attempts, each with the plans of those attempts (bit = plan rank).
/// Dunning rarely spans more than two months, so two are kept inline and the rest (if any) in an array.
public struct AttemptMonths: Sendable, Equatable {
    private var inline: [(Int32, UInt8)?] { [first, second] }
    private var first: (Int32, UInt8)?
    private var second: (Int32, UInt8)?
    private var more: [(Int32, UInt8)] = []

    public init() {}

    public subscript(month: Int32) -> UInt8? {
        get {
            if let f = first, f.0 == month { return f.1 }
            if let s = second, s.0 == month { return s.1 }
            return more.first { $0.0 == month }?.1
        }
        set {
            guard let bits = newValue else { return }  // months are only ever added
            if first == nil || first!.0 == month { first = (month, bits); return }
            if second == nil || second!.0 == month { second = (month, bits); return }
            if let i = more.firstIndex(where: { $0.0 == month }) { more[i].1 = bits } else { more.append((month, bits)) }
        }
    }

    /// Every month with its plan bits, in month order.
    public var entries: [(Int32, UInt8)] { (inline.compactMap { $0 } + more).sorted { $0.0 < $1.0 } }

    public static func == (a: AttemptMonths, b: AttemptMonths) -> Bool {
        a.entries.elementsEqual(b.entries) { $0.0 == $1.0 && $0.1 == $1.1 }
    }
}

/// A customer's invoices by id. Customers have a few dozen at most, so a linear search from the newest
/// beats a dictionary's hashing and costs far less memory.
public struct InvoiceList: Sendable, Equatable {
    private var ids: [String] = []
    private var states: [InvoiceState] = []

    public init() {}

    public subscript(id: String) -> InvoiceState? {
        get { ids.lastIndex(of: id).map { states[$0] } }
        set {
            if let i = ids.lastIndex(of: id) {
                if let newValue { states[i] = newValue } else { ids.remove(at: i); states.remove(at: i) }
            } else if let newValue {
                ids.append(id)
                states.append(newValue)
            }
        }
    }

    public var count: Int { ids.count }
    public mutating func reserveCapacity(_ n: Int) {
        ids.reserveCapacity(n)
        states.reserveCapacity(n)
    }
    /// Adds an invoice known not to be in the list yet (decoding).
    mutating func append(_ id: String, _ state: InvoiceState) {
        ids.append(id)
        states.append(state)
    }
    public var values: [InvoiceState] { states }
    /// (id, state) in id order.
    public var entries: [(String, InvoiceState)] { zip(ids, states).sorted { $0.0 < $1.0 } }

    public static func == (a: InvoiceList, b: InvoiceList) -> Bool {
        a.entries.elementsEqual(b.entries) { $0.0 == $1.0 && $0.1 == $1.1 }
    }
}
