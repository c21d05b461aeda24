import Events
import Foundation
import Marts

/// Durable state of one input partition number: its marts state and the next offset of each input
/// topic's partition with that number, written together so that they can never disagree.
///
/// Layout: `DIR/partition-N/snapshot.bin` (a full state) and `DIR/partition-N/log.bin` (an append-only
/// log of deltas: the customers changed and event ids accepted since the previous record, plus the
/// offsets, counters and aggregates). A checkpoint appends one delta and fsyncs it, so its cost grows with
/// what changed, not with the state. When the log outgrows the snapshot it is compacted into a new
/// snapshot (written to a temporary file, fsynced, renamed) on a background thread, from a copy-on-write
/// copy of the state, while consumption and checkpoints go on; a later checkpoint then drops the log records
/// the snapshot holds (rewriting the log atomically). Every record carries a format version, a
/// sequence number and a CRC-32: a torn last record (a crash mid-write) is dropped, since its offsets were
/// never acted on; any other damage is reported as corruption and the consumer refuses to start.
public final class CheckpointStore {
    /// 1: customers stored unpacked; 2: packed customers (`CustomerCodec`); 3: duplicate-detection slots
    /// hold the 16-bytes-per-step `ValueHash` instead of byte-wise FNV-1a; 4: event-id fingerprints
    /// (`EventFingerprint`) hashed a word at a time. Older versions are refused.
    public static let formatVersion: UInt16 = 4
    static let magic: [UInt8] = Array("UCCP".utf8)
    static let headerSize = 24

    public let directory: URL
    public let partition: Int32
    private var sequence: UInt64 = 0
    private var logBytes = 0
    public private(set) var snapshotBytes = 0
    /// Compaction threshold: the log is folded into a snapshot once it is larger than this and the snapshot.
    public var compactAfterBytes = 8 << 20
    /// The snapshot being written in the background, if any.
    private var pending: PendingCompaction?
    /// Whether the last compaction ran (true) or is still running.
    public var isCompacting: Bool { pending != nil }

    public init(stateDirectory: URL, partition: Int32) {
        self.directory = stateDirectory.appendingPathComponent("partition-\(partition)")
        self.partition = partition
    }

    var snapshotURL: URL { directory.appendingPathComponent("snapshot.bin") }
    var logURL: URL { directory.appendingPathComponent("log.bin") }

    public struct Loaded {
        public var state: MartState
        public var offsets: [String: Int64]
        /// Notes for the log, e.g. a torn last record that was dropped.
        public var notes: [String]
        public init(state: MartState, offsets: [String: Int64], notes: [String]) {
            self.state = state
            self.offsets = offsets
            self.notes = notes
        }
    }

    /// The stored state, or nil when there is none. Throws `CheckpointError` on corruption. The owner of the
    /// partition (`repair`) cuts a torn last record off the log; a reader (export, dashboard) only skips it,
    /// since it may be a record the owner is writing right now.
    public func load(repair: Bool = false) throws(CheckpointError) -> Loaded? {
        // A reader in another process can race a compaction (new snapshot and shortened log between its
        // two reads); the sequence numbers show it as a gap, and a second read sees a consistent pair.
        var attempt = 0
        while true {
            do {
                return try loadOnce(repair: repair)
            } catch let gap as SequenceGap {
                attempt += 1
                if attempt >= 3 {
                    throw CheckpointError(partition: partition, file: logURL.path,
                                          problem: "log records are missing: sequence \(gap.expected) expected, \(gap.found) found")
                }
                Thread.sleep(forTimeInterval: 0.05)
            } catch let e as CheckpointError {
                throw e
            } catch {
                throw CheckpointError(partition: partition, file: logURL.path, problem: "\(error)")
            }
        }
    }

    private struct SequenceGap: Error {
        var expected: UInt64
        var found: UInt64
    }

    private func loadOnce(repair: Bool) throws -> Loaded? {
        let fm = FileManager.default
        guard fm.fileExists(atPath: snapshotURL.path) || fm.fileExists(atPath: logURL.path) else { return nil }
        var content = Content()
        var notes: [String] = []
        var snapshotSeq: UInt64 = 0
        if let bytes = readWholeFile(snapshotURL.path) {
            snapshotBytes = bytes.count
            var pos = 0
            guard case let .record(kind, seq, payload, next) = try readRecord(bytes, &pos, file: "snapshot.bin"), kind == 1, next == bytes.count else {
                throw CheckpointError(partition: partition, file: snapshotURL.path, problem: "snapshot is truncated or malformed")
            }
            try decode(payload, into: &content, file: "snapshot.bin")
            snapshotSeq = seq
            sequence = seq
        }
        if let bytes = readWholeFile(logURL.path) {
            var pos = 0
            reading: while pos < bytes.count {
                let start = pos
                switch try readRecord(bytes, &pos, file: "log.bin") {
                case let .record(_, seq, payload, _):
                    if seq > snapshotSeq {
                        guard seq == sequence + 1 else { throw SequenceGap(expected: sequence + 1, found: seq) }
                        try decode(payload, into: &content, file: "log.bin")
                        sequence = seq
                    }
                case .tornTail where !repair:
                    break reading
                case .tornTail:
                    notes.append("partition \(partition): dropped an incomplete last checkpoint record (\(bytes.count - start) bytes) left by an interrupted write")
                    if let h = try? FileHandle(forWritingTo: logURL) {
                        try? h.truncate(atOffset: UInt64(start))
                        try? h.close()
                    }
                    pos = start
                    break reading
                }
            }
            logBytes = pos
        }
        let state = MartState(counters: content.counters, aggregates: content.aggregates, customers: content.customers, seen: content.seen)
        return Loaded(state: state, offsets: content.offsets, notes: notes)
    }

    /// Loads several partitions' checkpoints at once, one per core: a restart's time is their decoding.
    /// Each store is used by one thread only; results come in the order of `stores`.
    public static func loadAll(_ stores: [CheckpointStore], repair: Bool = false) -> [Result<Loaded?, CheckpointError>] {
        final class Job: @unchecked Sendable {
            let store: CheckpointStore
            let repair: Bool
            var result: Result<Loaded?, CheckpointError>?
            init(_ store: CheckpointStore, _ repair: Bool) {
                self.store = store
                self.repair = repair
            }
            func run() { result = Result { () throws(CheckpointError) in try store.load(repair: repair) } }
        }
        let jobs = stores.map { Job($0, repair) }
        DispatchQueue.concurrentPerform(iterations: jobs.count) { jobs[$0].run() }
        return jobs.map { $0.result! }
    }

    /// Appends a delta with what changed in `state` since the last checkpoint, and the offsets to resume
    /// from. Durable (fsynced) when it returns. Returns the bytes written.
    @discardableResult
    public func write(_ state: inout MartState, offsets: [String: Int64]) throws -> Int {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let changes = state.takeChanges()
        var w = BinaryWriter()
        Self.encode(&w, offsets: offsets, state: state, customers: changes.customers, customerCount: changes.customers.count,
                    slots: changes.slots)
        sequence += 1
        let header = Self.header(kind: 2, sequence: sequence, payload: w.bytes)
        if !FileManager.default.fileExists(atPath: logURL.path) {
            // A failure here shows as the FileHandle error below.
            _ = FileManager.default.createFile(atPath: logURL.path, contents: nil)
        }
        let handle = try FileHandle(forWritingTo: logURL)
        defer { try? handle.close() }
        try handle.seekToEnd()
        try handle.write(contentsOf: header)
        try handle.write(contentsOf: w.bytes)
        try handle.synchronize()
        let size = header.count + w.bytes.count
        logBytes += size
        try settleCompaction(wait: false)
        if pending == nil && logBytes > max(compactAfterBytes, snapshotBytes) { startCompaction(state, offsets: offsets) }
        return size
    }

    /// Writes the whole state as a new snapshot and empties the log, now (waiting for a background one first).
    public func compact(_ state: MartState, offsets: [String: Int64]) throws {
        try settleCompaction(wait: true)
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        snapshotBytes = try Self.writeSnapshot(state, offsets: offsets, sequence: sequence, to: snapshotURL, partition: partition).get()
        // The snapshot carries the log's last sequence number, so a crash before this truncation only
        // leaves log records that load() skips.
        if FileManager.default.fileExists(atPath: logURL.path) {
            let log = try FileHandle(forWritingTo: logURL)
            try log.truncate(atOffset: 0)
            try log.synchronize()
            try log.close()
        }
        logBytes = 0
    }

    /// Waits for a background compaction to finish and drops the log records its snapshot holds. Call before
    /// giving the partition up (a rebalance, shutdown) so that no thread writes to it afterwards.
    public func finishCompaction() throws {
        try settleCompaction(wait: true)
    }

    /// Starts a compaction in the background now, whatever the log's size (after waiting for a running one).
    /// `state` and `offsets` must be those of the last `write`.
    public func compactInBackground(_ state: MartState, offsets: [String: Int64]) throws {
        try settleCompaction(wait: true)
        startCompaction(state, offsets: offsets)
    }

    /// Starts writing `state` (as of the log's last record) as a snapshot on a thread of its own. The state
    /// is a value: the copy handed over shares storage with the consumer's until the consumer changes it.
    private func startCompaction(_ state: MartState, offsets: [String: Int64]) {
        let job = PendingCompaction(logOffset: logBytes)
        pending = job
        let url = snapshotURL, partition = partition, sequence = sequence
        Thread.detachNewThread {
            job.complete(Self.writeSnapshot(state, offsets: offsets, sequence: sequence, to: url, partition: partition))
        }
    }

    /// When the background snapshot is written (or at once with `wait`), keeps only the log records after
    /// it: those appended since it started, rewritten atomically as the new log.
    private func settleCompaction(wait: Bool) throws {
        guard let job = pending, let outcome = wait ? job.wait() : job.poll() else { return }
        pending = nil
        snapshotBytes = try outcome.get()
        let tail: Data
        do {
            let handle = try FileHandle(forReadingFrom: logURL)
            defer { try? handle.close() }
            try handle.seek(toOffset: UInt64(job.logOffset))
            tail = try handle.readToEnd() ?? Data()
        }
        do { try writeAtomically([[UInt8](tail)], to: logURL) } catch let e as AtomicWriteError {
            throw CheckpointError(partition: partition, file: logURL.path, problem: e.description)
        }
        logBytes = tail.count
    }

    private static func writeSnapshot(_ state: MartState, offsets: [String: Int64], sequence: UInt64, to url: URL,
                                      partition: Int32) -> Result<Int, CheckpointError> {
        var w = BinaryWriter()
        w.bytes.reserveCapacity(state.customers.count * 400 + state.seen.count * 16 + (1 << 20))
        encode(&w, offsets: offsets, state: state, customers: state.customers.packedEntries, customerCount: state.customers.count,
               slots: state.seen.slots)
        let header = Self.header(kind: 1, sequence: sequence, payload: w.bytes)
        do {
            try writeAtomically([header, w.bytes], to: url)
        } catch let e as AtomicWriteError {
            return .failure(CheckpointError(partition: partition, file: url.path, problem: e.description))
        } catch {
            return .failure(CheckpointError(partition: partition, file: url.path, problem: "cannot write the snapshot: \(error)"))
        }
        return .success(header.count + w.bytes.count)
    }

    /// Deletes this partition's checkpoint (for --rebuild).
    public func remove() throws {
        _ = pending?.wait()
        pending = nil
        if FileManager.default.fileExists(atPath: directory.path) { try FileManager.default.removeItem(at: directory) }
        sequence = 0
        logBytes = 0
        snapshotBytes = 0
    }

    /// Partition numbers that have a checkpoint under `stateDirectory`.
    public static func partitions(in stateDirectory: URL) -> [Int32] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: stateDirectory.path)) ?? []
        return names.compactMap { $0.hasPrefix("partition-") ? Int32($0.dropFirst("partition-".count)) : nil }.sorted()
    }

    // MARK: Encoding

    struct Content {
        var offsets: [String: Int64] = [:]
        var counters = MartState.Counters(accepted: 0, duplicates: 0, rejected: 0, minTime: nil, maxTime: nil)
        var aggregates = Aggregates()
        var customers = CustomerTable()
        var seen = SeenEvents()
    }

    private static func encode(_ w: inout BinaryWriter, offsets: [String: Int64], state: MartState,
                        customers: some Sequence<(String, [UInt8])>, customerCount: Int, slots: [(UInt64, UInt64)]) {
        w.u32(UInt32(offsets.count))
        for (t, o) in offsets.sorted(by: { $0.key < $1.key }) { w.string(t); w.i64(o) }
        let c = state.counters
        w.i64(Int64(c.accepted)); w.i64(Int64(c.duplicates)); w.i64(Int64(c.rejected)); w.optI64(c.minTime); w.optI64(c.maxTime)
        state.aggregates.encode(into: &w)
        w.u32(UInt32(customerCount))
        for (id, packed) in customers {
            w.string(id)
            w.u32(UInt32(packed.count))
            w.bytes.append(contentsOf: packed)
        }
        w.u32(UInt32(slots.count))
        for (key, check) in slots { w.u64(key); w.u64(check) }
    }

    private func decode(_ payload: ArraySlice<UInt8>, into c: inout Content, file: String) throws(CheckpointError) {
        var r = BinaryReader(payload)
        do {
            for _ in 0..<(try r.count()) { c.offsets[try r.string()] = try r.i64() }
            c.counters = MartState.Counters(accepted: Int(try r.i64()), duplicates: Int(try r.i64()), rejected: Int(try r.i64()),
                                            minTime: try r.optI64(), maxTime: try r.optI64())
            c.aggregates = try Aggregates(from: &r)
            let customers = try r.count()
            c.customers.reserveCapacity(c.customers.count + customers)
            for _ in 0..<customers {
                let id = try r.string()
                let packed = try r.take(try r.count())
                try CustomerCodec.validate(packed)
                c.customers.setPacked(id, Array(packed))
            }
            let slots = try r.count()
            c.seen.reserve(c.seen.count + slots)
            for _ in 0..<slots { c.seen.insert(key: try r.u64(), check: try r.u64()) }
            guard r.atEnd else { throw FormatError(message: "trailing bytes") }
        } catch {
            throw CheckpointError(partition: partition, file: directory.appendingPathComponent(file).path,
                                  problem: "record content is malformed (\(error))")
        }
    }

    /// The 24-byte header of a record holding `payload`.
    static func header(kind: UInt8, sequence: UInt64, payload: [UInt8]) -> [UInt8] {
        var w = BinaryWriter()
        w.bytes.append(contentsOf: magic)
        w.u16(formatVersion)
        w.u8(kind)
        w.u8(0)
        w.u64(sequence)
        w.u32(UInt32(payload.count))
        w.u32(CRC32.of(payload))
        return w.bytes
    }

    enum ReadResult {
        case record(kind: UInt8, sequence: UInt64, payload: ArraySlice<UInt8>, next: Int)
        case tornTail
    }

    private func readRecord(_ bytes: [UInt8], _ pos: inout Int, file: String) throws(CheckpointError) -> ReadResult {
        let path = directory.appendingPathComponent(file).path
        guard bytes.count - pos >= Self.headerSize else { return .tornTail }
        var r = BinaryReader(Array(bytes[pos..<(pos + Self.headerSize)]))
        let magic = try! r.take(4)
        guard Array(magic) == Self.magic else {
            throw CheckpointError(partition: partition, file: path, problem: "not an Undercurrent checkpoint (bad magic at byte \(pos))")
        }
        let version = try! r.u16()
        guard version <= Self.formatVersion else {
            throw CheckpointError(partition: partition, file: path,
                                  problem: "written by a newer format version (\(version); this build reads \(Self.formatVersion))")
        }
        guard version == Self.formatVersion else {
            throw CheckpointError(partition: partition, file: path,
                                  problem: "written by an older, incompatible format version (\(version); this build reads \(Self.formatVersion)); start again with --rebuild")
        }
        let kind = try! r.u8()
        _ = try! r.u8()
        let seq = try! r.u64()
        let length = Int(try! r.u32())
        let crc = try! r.u32()
        let start = pos + Self.headerSize
        guard bytes.count - start >= length else { return .tornTail }
        let payload = bytes[start..<(start + length)]
        guard CRC32.of(payload) == crc else {
            if start + length == bytes.count && file == "log.bin" { return .tornTail }
            throw CheckpointError(partition: partition, file: path, problem: "checksum mismatch in the record at byte \(pos) (corrupt)")
        }
        pos = start + length
        return .record(kind: kind, sequence: seq, payload: payload, next: pos)
    }
}

/// A snapshot written on a background thread: its outcome (the snapshot's size), and where the log stood
/// when it started.
private final class PendingCompaction: @unchecked Sendable {
    let logOffset: Int
    private let lock = NSLock()
    private var outcome: Result<Int, CheckpointError>?
    private let finished = DispatchSemaphore(value: 0)

    init(logOffset: Int) { self.logOffset = logOffset }

    func complete(_ result: Result<Int, CheckpointError>) {
        lock.withLock { outcome = result }
        finished.signal()
    }

    func poll() -> Result<Int, CheckpointError>? { lock.withLock { outcome } }

    func wait() -> Result<Int, CheckpointError> {
        finished.wait()
        finished.signal()
        return poll()!
    }
}

/// A checkpoint that cannot be used, with where and why.
public struct CheckpointError: Error, CustomStringConvertible, Sendable {
    public enum Kind: Sendable, Equatable {
        /// Unreadable, torn beyond repair, of another format: rebuilding it is the way out.
        case unusable
        /// Sound, but another consumer's (of other input topics): not this consumer's to use, write over or rebuild.
        case anotherConsumers
    }
    public var partition: Int32
    public var file: String
    public var problem: String
    public var kind: Kind
    public init(partition: Int32, file: String, problem: String, kind: Kind = .unusable) {
        self.partition = partition
        self.file = file
        self.problem = problem
        self.kind = kind
    }
    /// What is unusable and why; the caller adds what the user can do about it.
    public var description: String {
        let what = partition < 0 ? "the alert engine's checkpoint" : "checkpoint of partition \(partition)"
        return what + (kind == .unusable ? " is unusable" : " is another consumer's") + ": \(file): \(problem)"
    }
}
