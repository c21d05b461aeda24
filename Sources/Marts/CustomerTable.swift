import Events

/// The customers of one partition's state by id, kept small in memory.
///
/// A customer in use is *hot*: a `CustomerState` value, updated in place. Every other customer is *packed*:
/// its state encoded by `CustomerCodec` into one byte array (about 250 bytes for a customer with a few
/// events, where the same customer as a `Dictionary` value with its small arrays takes about 1,000). At most
/// `hotCapacity` customers are hot at once; when one more is needed, a hot customer not used recently (the
/// clock algorithm) is packed again. A customer's events come in bursts (a session's feature uses, an
/// invoice with its payment), so most events find their customer hot.
///
/// Rows never move: an open-addressing index (4 bytes a slot, at most 3/4 full) maps ids to rows, and the
/// rows are parallel arrays. The table also tracks which customers changed since the last checkpoint.
public struct CustomerTable: Sendable {
    public static let defaultHotCapacity = 8192
    /// How many customers may be hot at once.
    public var hotCapacity: Int {
        didSet { hotCapacity = Swift.max(1, hotCapacity) }
    }

    /// Row + 1 of the id hashed to each slot (0: empty); its count is a power of two.
    private var index: [Int32] = []
    /// The seed of this table's id hash (see `hash`); the index is never stored, so it may differ per process.
    private let seed = UInt64.random(in: 0...UInt64.max) | 1
    private var ids: [String] = []
    /// A packed customer's bytes; empty while the customer is hot.
    private var packed: [[UInt8]] = []
    /// Per row: its hot slot, or -1 when packed.
    private var hotSlot: [Int32] = []
    /// Per row: changed since the last `takeChanged`.
    private var changed: [Bool] = []
    private var changedRows: [Int32] = []
    private var hot: [CustomerState] = []
    /// Per hot slot: its row, or -1 when free.
    private var hotRow: [Int32] = []
    private var recentlyUsed: [Bool] = []
    private var hand = 0

    public init(hotCapacity: Int = defaultHotCapacity) { self.hotCapacity = Swift.max(1, hotCapacity) }

    public var count: Int { ids.count }
    public var isEmpty: Bool { ids.isEmpty }
    /// Every customer id, in the order customers were added.
    public var keys: [String] { ids }
    /// How many customers are hot now.
    public var hotCount: Int { hotRow.reduce(0) { $0 + ($1 >= 0 ? 1 : 0) } }

    public func contains(_ id: String) -> Bool { find(id).row != nil }

    /// The row of customer `id` (rows never move), nil when the table has no such customer.
    func row(of id: String) -> Int? { find(id).row }

    /// The id of a row.
    func id(atRow row: Int) -> String { ids[row] }

    /// Calls `body` with a row's state in place, so that the state is not copied out of the table (`read`
    /// passes a copy: each of the customer's arrays retained and released, a call). `inout` only for that:
    /// `body` must not change the state, which is not marked changed.
    mutating func inspect<R>(row: Int, _ body: (inout CustomerState) -> R) -> R {
        let s = Int(hotSlot[row])
        if s >= 0 { return body(&hot[s]) }
        var c = CustomerCodec.decode(packed[row])
        return body(&c)
    }

    public subscript(id: String) -> CustomerState? {
        guard let row = find(id).row else { return nil }  // (not `.map(state)`: that closure copies the table)
        return state(row)
    }

    /// Calls `body` with customer `id`'s state. A hot state is passed as a copy (`hot[s]`: each of its arrays
    /// retained and released; measured under callgrind when risk changes used this, 2.5% of a replay's
    /// instructions): per-event code in this module uses `inspect(row:_:)`, which passes it in place.
    public func read<R>(_ id: String, _ body: (borrowing CustomerState) -> R) -> R? {
        guard let row = find(id).row else { return nil }
        let s = Int(hotSlot[row])
        return s >= 0 ? body(hot[s]) : body(CustomerCodec.decode(packed[row]))
    }

    /// Runs `body` on customer `id`'s state (an empty state when the customer is new), made hot, and marks
    /// the customer changed. `extra` is passed through so that the caller can update another part of its
    /// own state in the same call.
    @inline(__always)
    public mutating func update<A, R>(_ id: String, _ extra: inout A, _ body: (inout CustomerState, inout A) -> R) -> R {
        let (row, slot) = makeHot(id)
        markChanged(row)
        return body(&hot[slot], &extra)
    }

    public mutating func update<R>(_ id: String, _ body: (inout CustomerState) -> R) -> R {
        var none: Void = ()
        return update(id, &none) { c, _ in body(&c) }
    }

    /// Sets a customer's packed state (a checkpoint's, checked with `CustomerCodec.validate`), replacing
    /// what the table held; the customer is not marked changed.
    public mutating func setPacked(_ id: String, _ bytes: [UInt8]) {
        let (found, at) = find(id)
        guard let row = found else {
            packed[addRow(id, at)] = bytes
            return
        }
        let s = Int(hotSlot[row])
        if s >= 0 {
            hotRow[s] = -1
            hotSlot[row] = -1
            hot[s] = CustomerState()
        }
        packed[row] = bytes
    }

    public mutating func reserveCapacity(_ n: Int) {
        ids.reserveCapacity(n)
        packed.reserveCapacity(n)
        hotSlot.reserveCapacity(n)
        changed.reserveCapacity(n)
        growIndex(for: n)
    }

    /// The ids of the customers changed since the last `takeChanged`, without starting a new change set.
    public var changedIDs: [String] { changedRows.map { ids[Int($0)] } }

    /// The customers changed since the last call, packed (for a checkpoint), and starts a new change set.
    public mutating func takeChanged() -> [(String, [UInt8])] {
        var out: [(String, [UInt8])] = []
        out.reserveCapacity(changedRows.count)
        for r in changedRows {
            let row = Int(r)
            changed[row] = false
            out.append((ids[row], packedState(row)))
        }
        changedRows.removeAll(keepingCapacity: true)
        return out
    }

    /// Every customer as (id, packed state), in row order: what a snapshot stores. Hot customers are
    /// encoded on the way; packed ones are handed over as they are.
    public var packedEntries: LazyMapSequence<Range<Int>, (String, [UInt8])> {
        (0..<ids.count).lazy.map { (ids[$0], packedState($0)) }
    }

    /// Bytes held by packed customers (their arrays' contents, without allocation overhead).
    public var packedBytes: Int { packed.reduce(0) { $0 + $1.count } }

    // MARK: Rows

    private func state(_ row: Int) -> CustomerState {
        let s = Int(hotSlot[row])
        return s >= 0 ? hot[s] : CustomerCodec.decode(packed[row])
    }

    private func packedState(_ row: Int) -> [UInt8] {
        let s = Int(hotSlot[row])
        return s >= 0 ? CustomerCodec.encode(hot[s]) : packed[row]
    }

    private mutating func markChanged(_ row: Int) {
        guard !changed[row] else { return }
        changed[row] = true
        changedRows.append(Int32(row))
    }

    /// The id's bytes eight at a time, each word one 64×64→128-bit multiply with the running hash, from a
    /// per-process random seed, then `SeenEvents.mix`: cheaper than `Hasher` for short ids, and the seed
    /// keeps crafted ids from predicting their slots.
    @inline(__always) private static func hash(_ id: String, _ seed: UInt64) -> Int {
        let s = id.utf8.span
        let n = s.count
        var h = seed ^ UInt64(truncatingIfNeeded: n)
        var i = 0
        while i < n {
            h = mum(ByteWords.loadWordOrTail(s, i) ^ 0xA4C1_D3B7_E58F_9A86, h ^ 0xE703_7ED1_A0B4_28DB)
            i += 8
        }
        return Int(truncatingIfNeeded: SeenEvents.mix(h))
    }

    /// The row of `id` if present, and the index slot where it is or would go.
    private func find(_ id: String) -> (row: Int?, slot: Int) {
        guard !index.isEmpty else { return (nil, -1) }
        let mask = index.count - 1
        var i = Self.hash(id, seed) & mask
        while true {
            let r = Int(index[i])
            if r == 0 { return (nil, i) }
            if ids[r - 1] == id { return (r - 1, i) }
            i = (i + 1) & mask
        }
    }

    private mutating func addRow(_ id: String, _ slot: Int) -> Int {
        var slot = slot
        if (ids.count + 1) * 4 > index.count * 3 {
            growIndex(for: ids.count + 1)
            slot = find(id).slot
        }
        let row = ids.count
        ids.append(id)
        packed.append([])
        hotSlot.append(-1)
        changed.append(false)
        index[slot] = Int32(row + 1)
        return row
    }

    private mutating func growIndex(for n: Int) {
        var size = Swift.max(16, index.count)
        while n * 4 > size * 3 { size *= 2 }
        guard size > index.count else { return }
        var fresh = [Int32](repeating: 0, count: size)
        let mask = size - 1
        for (row, id) in ids.enumerated() {
            var i = Self.hash(id, seed) & mask
            while fresh[i] != 0 { i = (i + 1) & mask }
            fresh[i] = Int32(row + 1)
        }
        index = fresh
    }

    // MARK: Hot customers

    private mutating func makeHot(_ id: String) -> (row: Int, slot: Int) {
        let (found, at) = find(id)
        let row: Int
        if let found {
            row = found
            let s = Int(hotSlot[row])
            if s >= 0 {
                recentlyUsed[s] = true
                return (row, s)
            }
        } else {
            row = addRow(id, at)
        }
        let s = freeHotSlot()
        hot[s] = packed[row].isEmpty ? CustomerState() : CustomerCodec.decode(packed[row])
        packed[row] = []
        hotSlot[row] = Int32(s)
        hotRow[s] = Int32(row)
        recentlyUsed[s] = true
        return (row, s)
    }

    /// A hot slot to use: a new one below capacity, else a free one or the first not used since the clock
    /// hand last passed it, whose customer is packed.
    private mutating func freeHotSlot() -> Int {
        if hot.count < hotCapacity {
            hot.append(CustomerState())
            hotRow.append(-1)
            recentlyUsed.append(false)
            return hot.count - 1
        }
        while true {
            let s = hand
            hand = hand + 1 >= hot.count ? 0 : hand + 1
            let row = Int(hotRow[s])
            if row < 0 { return s }
            if recentlyUsed[s] {
                recentlyUsed[s] = false
                continue
            }
            packed[row] = CustomerCodec.encode(hot[s])
            hotSlot[row] = -1
            hotRow[s] = -1
            return s
        }
    }
}

extension CustomerTable: Sequence {
    public struct Iterator: IteratorProtocol {
        let table: CustomerTable
        var row = 0
        public mutating func next() -> (key: String, value: CustomerState)? {
            guard row < table.ids.count else { return nil }
            defer { row += 1 }
            return (table.ids[row], table.state(row))
        }
    }

    public func makeIterator() -> Iterator { Iterator(table: self) }
    public var underestimatedCount: Int { ids.count }

    /// Every customer's state, in row order (packed ones decoded on the way).
    public var values: LazyMapSequence<Range<Int>, CustomerState> { (0..<ids.count).lazy.map { state($0) } }
}

extension CustomerTable: Equatable {
    /// Same customers with equal states, whichever are hot.
    public static func == (a: CustomerTable, b: CustomerTable) -> Bool {
        a.count == b.count && a.allSatisfy { b[$0.key] == $0.value }
    }
}
