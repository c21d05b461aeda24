/// A value per partition number, `empty` where none was set: an array for the usual numbers (growing to the
/// largest seen), a dictionary for others (an archive or a broker may name any Int32). For lookups made per
/// message, where hashing the number each time showed in profiles.
struct PartitionTable<Value> {
    private var small: [Value] = []
    private var others: [Int32: Value] = [:]
    let empty: Value
    private static var arrayLimit: Int32 { 1 << 16 }

    init(empty: Value) { self.empty = empty }

    subscript(partition: Int32) -> Value {
        get {
            guard partition >= 0 && partition < Self.arrayLimit else { return others[partition] ?? empty }
            return Int(partition) < small.count ? small[Int(partition)] : empty
        }
        set {
            guard partition >= 0 && partition < Self.arrayLimit else {
                others[partition] = newValue
                return
            }
            let p = Int(partition)
            if p >= small.count { small += Array(repeating: empty, count: p + 1 - small.count) }
            small[p] = newValue
        }
    }
}
