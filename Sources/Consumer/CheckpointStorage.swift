import Checkpoints
import Foundation
import Marts

/// Where the consumer's core keeps its partitions' checkpoints and the alert engine's: a directory on disk
/// (`DirectoryCheckpointStorage`) in every process, memory (`MemoryCheckpointStorage`) in unit tests of the
/// core. A write returns only when it is durable; the core never moves offsets past an unwritten state.
public protocol CheckpointStorage: AnyObject {
    /// The stored states of `partitions`, in order (nil: none stored), a torn last record repaired. May load
    /// them in parallel.
    func load(_ partitions: [Int32]) -> [Result<CheckpointStore.Loaded?, CheckpointError>]
    /// Stores what changed in `state` since its last write, with the offsets to resume from.
    func write(_ partition: Int32, state: inout MartState, offsets: [String: Int64]) throws
    /// Forgets a partition's checkpoint (a rebuild).
    func remove(_ partition: Int32) throws
    /// Where a partition's checkpoint is, in words (a path), for messages.
    func location(_ partition: Int32) -> String
    /// Waits for any background work on a partition (a compaction) before it is given up.
    func release(_ partition: Int32) throws
    /// The alert engine's checkpoint written with these rules, if any (a different fingerprint: nil).
    func loadAlertEngine(rules: String) throws -> AlertStateStore.Loaded?
    func writeAlertEngine(_ state: AlertEngine.State, rules: String, offsets: [String: [Int32: Int64]]) throws
    /// Forgets the alert engine's checkpoint and the alerts raised so far (a rebuild).
    func removeAlerts()
    /// Where a partition's topics' histories start (see `HistoryStart`); written before the checkpoint that
    /// first covers them, removed with the partition.
    func loadHistory(_ partition: Int32) -> [HistoryStart]
    func writeHistory(_ partition: Int32, _ records: [HistoryStart]) throws
}

/// Checkpoints in a state directory: `partition-N/` per partition (`CheckpointStore`), `alert-engine.bin`
/// (`AlertStateStore`) and the alert log.
public final class DirectoryCheckpointStorage: CheckpointStorage {
    public let directory: URL
    private var stores: [Int32: CheckpointStore] = [:]

    public init(directory: URL) { self.directory = directory }

    private func store(_ p: Int32) -> CheckpointStore {
        if let s = stores[p] { return s }
        let s = CheckpointStore(stateDirectory: directory, partition: p)
        stores[p] = s
        return s
    }

    public func load(_ partitions: [Int32]) -> [Result<CheckpointStore.Loaded?, CheckpointError>] {
        let list = partitions.map(store)
        if list.count == 1 { return [Result { () throws(CheckpointError) in try list[0].load(repair: true) }] }
        return CheckpointStore.loadAll(list, repair: true)
    }

    public func write(_ partition: Int32, state: inout MartState, offsets: [String: Int64]) throws {
        try store(partition).write(&state, offsets: offsets)
    }

    public func remove(_ partition: Int32) throws { try store(partition).remove() }

    public func location(_ partition: Int32) -> String { store(partition).directory.path }

    public func release(_ partition: Int32) throws {
        defer { stores[partition] = nil }
        try stores[partition]?.finishCompaction()
    }

    public func loadAlertEngine(rules: String) throws -> AlertStateStore.Loaded? {
        try AlertStateStore(stateDirectory: directory).load(rules: rules)
    }

    public func writeAlertEngine(_ state: AlertEngine.State, rules: String, offsets: [String: [Int32: Int64]]) throws {
        try AlertStateStore(stateDirectory: directory).write(state, rules: rules, offsets: offsets)
    }

    public func loadHistory(_ partition: Int32) -> [HistoryStart] { HistoryStart.load(stateDirectory: directory, partition: partition) }

    public func writeHistory(_ partition: Int32, _ records: [HistoryStart]) throws {
        try HistoryStart.write(records, stateDirectory: directory, partition: partition)
    }

    public func removeAlerts() {
        AlertStateStore(stateDirectory: directory).remove()
        try? FileManager.default.removeItem(at: directory.appendingPathComponent(AlertLog.fileName))
    }
}

/// Checkpoints kept in memory, as value copies of the states: for tests of the core without files. A
/// failure can be injected to exercise the retry path.
public final class MemoryCheckpointStorage: CheckpointStorage, @unchecked Sendable {
    public private(set) var partitions: [Int32: (state: MartState, offsets: [String: Int64])] = [:]
    public private(set) var alertEngine: (state: AlertEngine.State, rules: String, offsets: [String: [Int32: Int64]])?
    public private(set) var writes = 0
    /// Writes that fail (and are counted down) before writes succeed again.
    public var failingWrites = 0
    /// Partitions whose writes fail, as a crash part-way through a checkpoint would leave them.
    public var failingPartitions: Set<Int32> = []

    public init() {}

    public func load(_ numbers: [Int32]) -> [Result<CheckpointStore.Loaded?, CheckpointError>] {
        numbers.map { p in .success(partitions[p].map { CheckpointStore.Loaded(state: $0.state, offsets: $0.offsets, notes: []) }) }
    }

    public func write(_ partition: Int32, state: inout MartState, offsets: [String: Int64]) throws {
        if failingWrites > 0 || failingPartitions.contains(partition) {
            failingWrites = max(0, failingWrites - 1)
            throw CheckpointError(partition: partition, file: "memory", problem: "injected write failure")
        }
        _ = state.takeChanges()
        partitions[partition] = (state, offsets)
        writes += 1
    }

    public func remove(_ partition: Int32) throws {
        partitions[partition] = nil
        histories[partition] = nil
    }
    public func release(_ partition: Int32) throws {}
    public func location(_ partition: Int32) -> String { "memory" }

    public func loadAlertEngine(rules: String) throws -> AlertStateStore.Loaded? {
        guard let a = alertEngine, a.rules == rules else { return nil }
        return AlertStateStore.Loaded(state: a.state, offsets: a.offsets)
    }

    public func writeAlertEngine(_ state: AlertEngine.State, rules: String, offsets: [String: [Int32: Int64]]) throws {
        alertEngine = (state, rules, offsets)
    }

    public func removeAlerts() { alertEngine = nil }
    public private(set) var histories: [Int32: [HistoryStart]] = [:]
    public func loadHistory(_ partition: Int32) -> [HistoryStart] { histories[partition] ?? [] }
    public func writeHistory(_ partition: Int32, _ records: [HistoryStart]) throws { histories[partition] = records }
}
