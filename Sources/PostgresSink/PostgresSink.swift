import Checkpoints
import Consumer
import Events
import Foundation
import Logging
import Marts
import Postgres
import Synchronization

/// Mirrors the marts into PostgreSQL after every checkpoint, exactly once (see docs/architecture.md,
/// "The PostgreSQL sink").
///
/// Each input partition owns its rows: its customers' rows of `mart_customer_360` and its additive
/// aggregates; a write puts what changed since the partition's position in the database, and the new
/// position, in one transaction. The monthly marts are recomputed in that transaction from every
/// partition's aggregates in the database, so that consumers sharing a database (several in one group)
/// give the same tables as one. A position in the database that is not the one the changes start from
/// (a crash between the local checkpoint and the commit, a restored database, tables recreated) makes the
/// partition's rows be written whole.
///
/// Called on the consuming thread after each checkpoint. When the server is away the consumer goes on;
/// the sink retries every `retryInterval`, logs the outage once a minute, and catches up when it returns.
public final class PostgresSink: ConsumerSink, @unchecked Sendable {
    public struct Options: Sendable {
        public var uri: String
        /// Empty every table at start, so that all rows are written again (`--rebuild`).
        public var rebuild = false
        /// How long to wait before connecting again after a failure.
        public var retryInterval: Duration = .seconds(2)
        /// How often an idle consumer checks whether the marts' as-of moved (other consumers' partitions).
        public var refreshInterval: Duration = .seconds(5)
        /// Customer rows copied and merged at a time: the server merges one chunk while the next is made.
        public var chunkRows = 32_768
        /// How long a statement waits for a table lock that someone else holds (a reader's `LOCK TABLE`, an
        /// `ALTER`, a `VACUUM FULL`) before it fails and is retried at a later checkpoint: the sink is called on the
        /// consuming thread, and a lock held for an hour must not stop the stream for an hour. Applies unless the
        /// URI's `options` set `lock_timeout`.
        public var lockTimeout: Duration = .seconds(5)
        /// The longest a write waits without the server taking or sending anything before the connection is
        /// given up as broken (a backend that stopped answering while its host still acknowledges) and the sink
        /// connects again. Well above any one statement of a write (a chunk's merge takes about a second).
        public var responseTimeout: Duration = .seconds(60)
        /// After a write gave up on a lock, how long the sink leaves the tables alone (checkpoints go on, and
        /// count as behind) before it tries again: each try holds the consumer up for up to `lockTimeout`. Also how
        /// long the write lock may be found taken by other consumers' writes, each time tried again at the next
        /// checkpoint without waiting, before a write queues for it (up to `lockTimeout`).
        public var lockRetryInterval: Duration = .seconds(30)
        /// The consumer's input topics. Positions in the database that name others are the marts of another
        /// consumer (a replayed history's, say, pointed at the live consumer's database): refused, never overwritten.
        public var inputTopics: Set<String> = Set(Topics.inputs)
        public init(uri: String) { self.uri = uri }
    }

    /// What one partition's rows in the database are known to be.
    struct Tracked {
        /// The partition's position in the database after our last commit; nil until verified against it.
        var written: StatePosition?
        /// The position the pending changes start from (valid while `written` is nil).
        var base: StatePosition
        /// Customers changed since that position.
        var dirty: Set<String> = []
        /// For every customer written: the as-of at which its row may next change by time alone
        /// (Int64.max: never), bucketed by day in `due`.
        var next: [String: Int64] = [:]
        var due: [Int64: [String]] = [:]
        /// The as-of its customer rows were computed at.
        var rowsAsOf: Int64?
        /// The position of the latest checkpoint handed over.
        var position = StatePosition(offsets: [:], taken: 0)
    }

    public let options: Options
    let logger: Logger
    var db: PostgresConnection?
    var tracked: [Int32: Tracked] = [:]
    /// Every partition's aggregates as last read or written, by the version the database gave them.
    var aggregatesCache: [Int32: (version: Int64, aggregates: Aggregates)] = [:]
    /// Each partition's history starts as this connection last wrote them to `history_starts` (emptied at each connection).
    private var historyWritten: [Int32: [HistoryStart]] = [:]
    private var lastAttempt: ContinuousClock.Instant?
    private var lastRefresh = ContinuousClock.now
    private var lastOutageLog: ContinuousClock.Instant?
    private var outageSince: ContinuousClock.Instant?
    /// Set when a write gave up on a lock another session holds: since when, and the next try.
    private var lockedSince: ContinuousClock.Instant?
    private var lockedRetryAt: ContinuousClock.Instant?
    private var lastLockLog: ContinuousClock.Instant?
    private var lastRefusalLog: ContinuousClock.Instant?
    /// Since when the write lock has been found taken by another writer, at every try since.
    private var writeLockBusySince: ContinuousClock.Instant?
    /// Checkpoints handed over since the last commit, and when the oldest of them was taken.
    private var behind = 0
    private var behindSince: Date?
    private let status = Mutex(SinkStatus(name: "postgres", connected: false))
    /// The event-time range over every partition the monthly marts were last computed for.
    private var lastWindow: (Int64?, Int64?)?
    public private(set) var commits = 0
    private var calledOnce = false
    /// `--rebuild`'s emptying of the tables is done.
    private var rebuilt = false
    /// Writes that gave up on a lock another session held.
    public private(set) var lockTimeouts = 0
    /// Writes (or connections) put off without waiting because another writer held the write lock.
    public private(set) var writeLockBusy = 0
    /// Rows of mart_customer_360 written so far (for benchmarks and tests).
    public private(set) var customerRowsWritten = 0

    /// Connects and creates or migrates the schema. A server that is not reachable is not an error here (the
    /// sink catches up when it is); wrong credentials, a missing database or an unusable URI are.
    public init(options: Options, logger: Logger) throws(PostgresError) {
        self.options = options
        self.logger = logger
        try PostgresURI.validate(options.uri)
        do {
            try connect()
        } catch where error.isTransient {
            noteFailure(error)
        }
    }

    public var redactedURI: String { PostgresURI.redacted(options.uri) }

    private func connect() throws(PostgresError) {
        lastAttempt = .now
        let c = try PostgresConnection(uri: options.uri, applicationName: "undercurrent-marts-consumer", responseTimeout: options.responseTimeout)
        // Staging tables of a large checkpoint stay in memory (the default, 8 MB, spills them to disk).
        try c.execute("SET temp_buffers = '512MB'")
        if try c.execute("SHOW lock_timeout").rows.first?.first == "0" {
            try c.execute("SET lock_timeout = \(max(1, Int((options.lockTimeout.seconds * 1000).rounded())))")
        }
        let recreated = try PostgresSchema.ensure(c, waitForLock: queueForWriteLock)
        // Before `--rebuild` empties anything: another consumer's marts are not this one's to empty.
        try checkOwnership(try readPositions(c))
        // Once, at the first connection (the server may be away at start).
        if options.rebuild && !rebuilt {
            try PostgresSchema.empty(c, waitForLock: queueForWriteLock)
            rebuilt = true
        }
        writeLockBusySince = nil
        try PostgresSchema.createStages(c)
        if !recreated.isEmpty && commits > 0 {
            logger.warning("postgres: tables \(recreated.joined(separator: ", ")) were missing or altered; recreated, refilling")
        }
        db = c
        if let since = outageSince {
            logger.notice("postgres: connected again after \(Int((ContinuousClock.now - since).seconds)) s", metadata: [LogKey.sinkURI: "\(redactedURI)"])
            outageSince = nil
            lastOutageLog = nil
        }
        // Everything is verified against the database again.
        for p in tracked.keys { unverify(p) }
        aggregatesCache = [:]
        historyWritten = [:]
    }

    // MARK: ConsumerSink

    public func send(_ outputs: [ConsumerOutput]) throws {}
    public var mirrorsState: Bool { true }

    public var wantsCheckpoint: Bool {
        // Until the first call the database has not been compared with the checkpoints at all.
        if !calledOnce || behind > 0 || tracked.values.contains(where: { $0.written == nil }) { return true }
        return ContinuousClock.now - lastRefresh >= options.refreshInterval
    }

    public func checkpointed(_ partitions: [CheckpointedPartition]) {
        calledOnce = true
        let open = Set(partitions.map(\.number))
        for p in tracked.keys where !open.contains(p) { tracked[p] = nil }
        var changed = false
        for p in partitions {
            if tracked[p.number] == nil {
                tracked[p.number] = Tracked(written: nil, base: p.previousPosition, dirty: Set(p.changedCustomers), position: p.position)
                changed = changed || p.position != p.previousPosition
                continue
            }
            if !p.changedCustomers.isEmpty || p.position != tracked[p.number]!.position {
                tracked[p.number]!.dirty.formUnion(p.changedCustomers)
                tracked[p.number]!.position = p.position
                changed = true
            }
        }
        if changed {
            behind += 1
            if behindSince == nil { behindSince = Date() }
        }
        lastRefresh = .now
        if let at = lockedRetryAt, ContinuousClock.now < at {
            publishStatus()
            return
        }
        if db == nil {
            if let last = lastAttempt, ContinuousClock.now - last < options.retryInterval {
                publishStatus()
                return
            }
            do { try connect() } catch {
                noteFailure(error)
                publishStatus()
                return
            }
        }
        write(partitions, retryAfterRepair: true)
        publishStatus()
    }

    public func close() { db = nil }

    public var sinkStatus: SinkStatus? { status.withLock { $0 } }

    // MARK: Writing

    private func write(_ partitions: [CheckpointedPartition], retryAfterRepair: Bool) {
        guard let db else { return }
        do {
            try transaction(db, partitions)
            commits += 1
            behind = 0
            behindSince = nil
            if let since = lockedSince {
                logger.notice("postgres: the tables are free again after \(Int((ContinuousClock.now - since).seconds)) s; caught up")
                (lockedSince, lockedRetryAt, lastLockLog) = (nil, nil, nil)
            }
        } catch {
            for p in tracked.keys { unverify(p) }
            _ = try? db.execute("ROLLBACK")  // (libpq first discards what a merge sent without waiting still had to say)
            if error.sqlState == "55P03" {
                noteLocked(error)
                return
            }
            if error.isTransient || !db.isOpen {
                self.db = nil
                noteOutage(error)
                return
            }
            if error.code == .rejected {
                noteRefusal(error)
                return
            }
            // A table dropped or altered under us: recreate it (positions cleared) and write everything again.
            if retryAfterRepair, let state = error.sqlState, state.hasPrefix("42") {
                logger.warning("postgres: \(error); checking the schema")
                do {
                    let recreated = try PostgresSchema.ensure(db, waitForLock: queueForWriteLock)
                    try PostgresSchema.createStages(db)
                    if !recreated.isEmpty { logger.warning("postgres: recreated \(recreated.joined(separator: ", ")); refilling") }
                    aggregatesCache = [:]
                    historyWritten = [:]
                    write(partitions, retryAfterRepair: false)
                } catch where error.sqlState == "55P03" {
                    noteLocked(error)
                } catch {
                    logger.error("postgres: cannot repair the schema: \(error)")
                }
                return
            }
            logger.error("postgres: write failed: \(error); retrying at the next checkpoint")
        }
    }

    /// After a failed or unknown write: the database's position is checked again before the next one.
    private func unverify(_ p: Int32) {
        guard var t = tracked[p] else { return }
        if let w = t.written { t.base = w }
        t.written = nil
        tracked[p] = t
    }

    /// Whether a write queues for the write lock (up to `lockTimeout`) instead of only taking it if it is free: once
    /// other writers have held it at every try for `lockRetryInterval`, so that a busy database cannot starve this
    /// consumer's writes.
    private var queueForWriteLock: Bool {
        writeLockBusySince.map { ContinuousClock.now - $0 >= options.lockRetryInterval } ?? false
    }

    /// A failure to connect: a lock found taken, a refusal, or an outage.
    private func noteFailure(_ error: PostgresError) {
        if error.sqlState == "55P03" {
            noteLocked(error)
        } else if error.code == .rejected {
            noteRefusal(error)
        } else {
            noteOutage(error)
        }
    }

    /// Refused for a reason waiting does not mend (credentials, another consumer's marts): said once a minute, and
    /// tried again as after an outage, in case someone mends it meanwhile.
    private func noteRefusal(_ error: PostgresError) {
        if Self.due(&lastRefusalLog) { logger.error("postgres: \(error.message)", metadata: [LogKey.sinkBehindCheckpoints: "\(behind)"]) }
    }

    /// A statement that found a lock taken (SQLSTATE 55P03): not ours to break.
    /// - The write lock, taken by another writer and not waited for: most likely another consumer sharing the
    ///   database in a write of its own. The write (or connection) is tried again at the next checkpoint.
    /// - Any lock after `lock_timeout`: a table another session keeps locked, or the write lock queued for and held
    ///   for long. The tables are left alone for `lockRetryInterval`, with a warning once a minute.
    /// Either way the checkpoints go on and count the sink behind.
    private func noteLocked(_ error: PostgresError) {
        let now = ContinuousClock.now
        if error.message == PostgresSchema.writeLockBusy.message {
            writeLockBusy += 1
            if writeLockBusySince == nil { writeLockBusySince = now }
            logger.debug("postgres: another writer holds the write lock; trying again at the next checkpoint",
                         metadata: [LogKey.sinkBehindCheckpoints: "\(behind)"])
            return
        }
        lockTimeouts += 1
        if lockedSince == nil { lockedSince = now }
        lockedRetryAt = now + options.lockRetryInterval
        if Self.due(&lastLockLog) {
            let what = writeLockBusySince.map {
                "the sink's write lock (advisory lock \(PostgresSchema.lockKey)) has been held by another session for \(Int((now - $0).seconds)) s"
                    + " (another consumer sharing this database in a long write, or a session holding that lock)"
            } ?? "a table is locked by another session (\(error.message))"
            logger.warning("postgres: \(what); consuming on, tables catch up once it is released",
                           metadata: [LogKey.sinkBehindCheckpoints: "\(behind)", LogKey.sinkRetrySeconds: "\(Int(options.lockRetryInterval.seconds))"])
        }
    }

    private func noteOutage(_ error: PostgresError) {
        if outageSince == nil { outageSince = .now }
        if Self.due(&lastOutageLog) {
            logger.error("postgres: \(error.message); consuming on, tables catch up when the server is back",
                         metadata: [LogKey.sinkURI: "\(redactedURI)", LogKey.sinkBehindCheckpoints: "\(behind)"])
        }
    }

    /// Whether a message logged at most once a minute is due (then noted as logged now).
    private static func due(_ last: inout ContinuousClock.Instant?) -> Bool {
        let now = ContinuousClock.now
        guard last.map({ now - $0 >= .seconds(60) }) ?? true else { return false }
        last = now
        return true
    }

    /// Refuses to write over the marts of a consumer of other topics (see `Options.inputTopics`).
    private func checkOwnership(_ positions: [Int32: Position]) throws(PostgresError) {
        for (p, pos) in positions.sorted(by: { $0.key < $1.key }) where !pos.position.offsets.keys.allSatisfy(options.inputTopics.contains) {
            let s = PostgresSchema.schema
            throw PostgresError(code: .rejected, message: "the marts in schema \(s) are another consumer's: partition \(p)'s position there is of topics "
                + "\(pos.position.offsets.keys.sorted().joined(separator: ", ")), and this consumer reads \(options.inputTopics.sorted().joined(separator: ", ")); "
                + "give it a database of its own, or drop schema \(s) if those marts are no longer wanted")
        }
    }

    private func publishStatus() {
        let s = SinkStatus(name: "postgres", connected: db != nil, checkpointsBehind: behind,
                           secondsBehind: behindSince.map { Date().timeIntervalSince($0) } ?? 0, commits: commits)
        status.withLock { $0 = s }
    }

    struct Position {
        /// Its offsets and the messages its state took in (the accepted, duplicates and rejected columns).
        var position: StatePosition
        var minTime: Int64?
        var maxTime: Int64?
        var rowsAsOf: Int64?
        var version: Int64
    }

    /// Seconds spent in each phase of the writes so far (for benchmarks).
    public private(set) var phaseSeconds: [String: Double] = [:]
    private var phaseStart = ContinuousClock.now
    private func phase(_ name: String) {
        let now = ContinuousClock.now
        phaseSeconds[name, default: 0] += (now - phaseStart).seconds
        phaseStart = now
    }

    /// One write, in one transaction (docs/architecture.md, "The PostgreSQL sink"): our partitions' customer rows
    /// and their owners, the positions and aggregates, then the monthly marts from every partition's aggregates.
    private func transaction(_ db: PostgresConnection, _ partitions: [CheckpointedPartition]) throws(PostgresError) {
        phaseStart = .now
        let s = PostgresSchema.schema
        try db.execute("BEGIN")
        try PostgresSchema.takeWriteLock(db, wait: queueForWriteLock)
        writeLockBusySince = nil
        let inDB = try readPositions(db)
        try checkOwnership(inDB)
        phase("begin")
        let mine = Set(partitions.map(\.number))
        // The marts' as-of and first event time over every partition: ours as checkpointed, the others' as written.
        var minTime: Int64? = nil, asOf: Int64? = nil
        func widen(_ lo: Int64?, _ hi: Int64?) {
            if let lo { minTime = min(minTime ?? lo, lo) }
            if let hi { asOf = max(asOf ?? hi, hi) }
        }
        for (p, pos) in inDB where !mine.contains(p) { widen(pos.minTime, pos.maxTime) }
        for p in partitions { widen(p.state.minTime?.ms, p.state.maxTime?.ms) }
        let g = asOf ?? 0

        var nextTracked = tracked
        let (staged, whole, positionsChanged) = try writeCustomerRows(db, partitions, inDB: inDB, asOf: g, tracked: &nextTracked)
        try recordOwners(db, staged: staged, whole: whole)

        // Ours whose position did not move: the aggregates the database holds for them are their state's. A sink
        // that has just connected (a new process, a reconnect) has none cached, and the monthly marts need them.
        let moved = Set(positionsChanged.map(\.number))
        for p in partitions where !moved.contains(p.number) {
            if let version = inDB[p.number]?.version, aggregatesCache[p.number]?.version != version {
                aggregatesCache[p.number] = (version, p.state.aggregates)
            }
        }

        // Nothing of ours changed and nothing of the others: the tables are as they were.
        var stale: [Int32] = []
        for (p, pos) in inDB where !mine.contains(p) && aggregatesCache[p]?.version != pos.version { stale.append(p) }
        // Where each partition's history starts, written when it differs from what this connection wrote last.
        let historyDue = partitions.filter { historyWritten[$0.number] != $0.history }
        let unchanged = staged == 0 && whole.isEmpty && positionsChanged.isEmpty && stale.isEmpty && historyDue.isEmpty
            && partitions.allSatisfy { inDB[$0.number]?.rowsAsOf == g } && lastWindow.map { $0 == (minTime, asOf) } == true
        if unchanged {
            try db.execute("COMMIT")
            tracked = nextTracked
            for p in partitions { tracked[p.number]!.written = p.position }
            return
        }

        // Positions: every partition of ours, its aggregates where its offsets moved.
        let now = Timestamp(ms: Int64(Date().timeIntervalSince1970 * 1000)).description
        let still = partitions.map(\.number).filter { !moved.contains($0) }
        if !still.isEmpty {
            try db.query("UPDATE \(s).sink_positions SET rows_as_of = $1, written_at = $2 WHERE partition = ANY($3::integer[])",
                         [Timestamp(ms: g).description, now, "{" + still.map(String.init).joined(separator: ",") + "}"])
        }
        for p in positionsChanged {
            var w = BinaryWriter()
            p.state.aggregates.encode(into: &w)
            let r = try db.query("""
                INSERT INTO \(s).sink_positions AS t VALUES ($1, $2::jsonb, $3, $4, $5, $6, $7, $8, $9, nextval('\(s).sink_version'), decode($10, 'hex'))
                ON CONFLICT (partition) DO UPDATE SET offsets = EXCLUDED.offsets, accepted = EXCLUDED.accepted, duplicates = EXCLUDED.duplicates,
                  rejected = EXCLUDED.rejected, min_event_time = EXCLUDED.min_event_time, max_event_time = EXCLUDED.max_event_time,
                  rows_as_of = EXCLUDED.rows_as_of, written_at = EXCLUDED.written_at, version = EXCLUDED.version, aggregates = EXCLUDED.aggregates
                RETURNING version
                """, [String(p.number), Self.encodeOffsets(p.offsets), String(p.state.accepted), String(p.state.duplicates), String(p.state.rejected),
                      p.state.minTime?.description, p.state.maxTime?.description, Timestamp(ms: g).description, now, Self.hex(w.bytes)])
            aggregatesCache[p.number] = (Int64(r.rows[0][0]!)!, p.state.aggregates)
        }

        if !historyDue.isEmpty { try writeHistory(db, historyDue) }
        phase("positions")
        // The monthly marts, from every partition's aggregates.
        for p in aggregatesCache.keys where inDB[p] == nil && !mine.contains(p) { aggregatesCache[p] = nil }
        if !stale.isEmpty {
            let r = try db.execute("SELECT partition, version, encode(aggregates, 'hex') FROM \(s).sink_positions WHERE partition IN (\(stale.map(String.init).joined(separator: ",")))")
            for row in r.rows {
                var reader = BinaryReader(Self.unhex(row[2]!))
                guard let a = try? Aggregates(from: &reader) else {
                    // SQLSTATE XX001, data_corrupted: not an outage, so it is reported as a failed write, not waited out.
                    throw PostgresError(code: .statement, message: "partition \(row[0]!)'s aggregates in \(s).sink_positions are unreadable",
                                        sqlState: "XX001")
                }
                aggregatesCache[Int32(row[0]!)!] = (Int64(row[1]!)!, a)
            }
        }
        var snapshot = MartSnapshot()
        for (_, entry) in aggregatesCache { snapshot.aggregates.merge(entry.aggregates) }
        snapshot.minTime = minTime.map { Timestamp(ms: $0) }
        snapshot.asOf = asOf.map { Timestamp(ms: $0) }
        var sql = ""
        for table in snapshot.tables() where table.name != PostgresSchema.customer360.name {
            let t = PostgresSchema.tables.first { $0.name == table.name }!
            let stage = "sink_stage_\(t.name)"
            if !table.rows.isEmpty {
                sql += "INSERT INTO \(stage) VALUES " + table.rows.map { "(" + $0.map(Self.literal).joined(separator: ",") + ")" }.joined(separator: ",\n") + ";\n"
            }
            let keyMatch = t.key.map { "x.\($0) = t.\($0)" }.joined(separator: " AND ")
            sql += "DELETE FROM \(t.qualified) t WHERE NOT EXISTS (SELECT 1 FROM \(stage) x WHERE \(keyMatch));\n"
            sql += Self.upsert(t, from: stage)
        }
        try db.execute(sql)
        phase("monthly")
        try db.execute("COMMIT")
        phase("commit")
        for p in partitions {
            nextTracked[p.number]!.written = p.position
        }
        tracked = nextTracked
        for p in historyDue { historyWritten[p.number] = p.history }
        customerRowsWritten += staged
        lastWindow = (minTime, asOf)
    }

    /// Replaces the `history_starts` rows of `partitions` with their history as checkpointed.
    private func writeHistory(_ db: PostgresConnection, _ partitions: [CheckpointedPartition]) throws(PostgresError) {
        let s = PostgresSchema.schema
        var sql = "DELETE FROM \(s).history_starts WHERE partition IN (\(partitions.map { String($0.number) }.joined(separator: ",")));\n"
        let rows = partitions.flatMap { p in
            p.history.map { h in
                "(\(p.number), \(PostgresSchema.literal(h.topic)), \(h.firstOffset), "
                    + "\(h.firstTimestampMs.map { PostgresSchema.literal(Timestamp(ms: $0).description) } ?? "NULL"), \(h.missedMessages), "
                    + "\(h.gap.map { PostgresSchema.literal($0.rawValue) } ?? "NULL"))"
            }
        }
        if !rows.isEmpty { sql += "INSERT INTO \(s).history_starts VALUES " + rows.joined(separator: ",\n") + ";\n" }
        try db.execute(sql)
    }

    /// Every partition's position in the database.
    private func readPositions(_ db: PostgresConnection) throws(PostgresError) -> [Int32: Position] {
        var inDB: [Int32: Position] = [:]
        let rows = try db.execute("""
            SELECT partition, offsets::text, (extract(epoch from min_event_time) * 1000)::bigint,
                   (extract(epoch from max_event_time) * 1000)::bigint, (extract(epoch from rows_as_of) * 1000)::bigint, version,
                   accepted + duplicates + rejected
            FROM \(PostgresSchema.schema).sink_positions
            """)
        for r in rows.rows {
            inDB[Int32(r[0]!)!] = Position(position: StatePosition(offsets: Self.decodeOffsets(r[1]!), taken: Int64(r[6]!)!), minTime: r[2].flatMap { Int64($0) },
                                           maxTime: r[3].flatMap { Int64($0) }, rowsAsOf: r[4].flatMap { Int64($0) }, version: Int64(r[5]!)!)
        }
        return inDB
    }

    /// Writes our partitions' customer rows into `mart_customer_360` as of `g`: what changed, what time changed, or
    /// everything of a partition whose position is not ours. Returns the rows staged, the partitions written whole,
    /// and those whose offsets moved; `tracked` gets what each partition's rows now are.
    private func writeCustomerRows(_ db: PostgresConnection, _ partitions: [CheckpointedPartition], inDB: [Int32: Position], asOf g: Int64,
                                   tracked nextTracked: inout [Int32: Tracked]) throws(PostgresError)
        -> (staged: Int, whole: [Int32], positionsChanged: [CheckpointedPartition]) {
        var rows = try ChunkedCustomerRows(db, chunkRows: options.chunkRows)
        var whole: [Int32] = []
        var positionsChanged: [CheckpointedPartition] = []
        for p in partitions {
            var t = nextTracked[p.number]!
            let stored = inDB[p.number]
            if let w = t.written, w == stored?.position, w == p.position, t.dirty.isEmpty, stored?.rowsAsOf == g { continue }
            enum Mode { case incremental, scan(from: Int64?, dirty: Bool), whole }
            var mode: Mode
            if let w = t.written, let stored, w == stored.position {
                mode = .incremental
            } else if let stored, stored.position == p.position {
                mode = .scan(from: stored.rowsAsOf, dirty: false)  // its rows are this state's, at an older as-of
            } else if let stored, stored.position == t.base {
                mode = .scan(from: stored.rowsAsOf, dirty: true)
            } else {
                mode = .whole
            }
            // Rows computed at a later as-of than the marts' now (positions cleared elsewhere, a shorter history):
            // none of them can be trusted to be the row at this as-of.
            if let at = stored?.rowsAsOf, at > g {
                if case .whole = mode {} else { mode = .scan(from: nil, dirty: false) }
            }
            var ids: [String] = []
            switch mode {
            case .incremental:
                var set = t.dirty
                let today = g / Timestamp.millisecondsPerDay
                for day in t.due.keys where day <= today {
                    for id in t.due[day]! where (t.next[id] ?? 0) <= g { set.insert(id) }
                }
                ids = Array(set)
            case let .scan(from, dirty):
                t.next = [:]
                t.due = [:]
                var set = dirty ? t.dirty : []
                for (id, c) in p.state.customers {
                    guard !set.contains(id) else { continue }
                    let n = from.map { MartSnapshot.customer360NextChange(c, asOf: Timestamp(ms: $0)) ?? Int64.max } ?? 0
                    if n <= g { set.insert(id) } else { Self.schedule(&t, id, n) }
                }
                ids = Array(set)
            case .whole:
                t.next = [:]
                t.due = [:]
                ids = p.state.customers.keys
                whole.append(p.number)
            }
            let at = Timestamp(ms: g)
            for id in ids {
                let isNew = t.next[id] == nil
                guard let (row, n) = p.state.customers.read(id, { c in
                    (MartSnapshot.customer360Row(id, c, asOf: at), MartSnapshot.customer360NextChange(c, asOf: at))
                }) else { continue }
                try rows.add(row, owner: isNew ? p.number : nil, phase: phase)
                Self.schedule(&t, id, n ?? Int64.max)
            }
            t.dirty = []
            t.rowsAsOf = g
            nextTracked[p.number] = t
            if stored?.position != p.position { positionsChanged.append(p) }
        }
        let staged = try rows.finish(phase: phase)
        return (staged, whole, positionsChanged)
    }

    /// Records the owning partition of the customer rows this write added, and deletes the rows that partitions
    /// written whole owned but no longer have (a rebuilt or replaced history).
    private func recordOwners(_ db: PostgresConnection, staged: Int, whole: [Int32]) throws(PostgresError) {
        let s = PostgresSchema.schema
        if staged > 0 {
            try db.execute("""
                INSERT INTO \(s).sink_customer_partition SELECT customer_id, owner FROM sink_stage_owner ORDER BY customer_id
                ON CONFLICT (customer_id) DO UPDATE SET partition = EXCLUDED.partition WHERE sink_customer_partition.partition <> EXCLUDED.partition;
                """)
        }
        phase("owners")
        guard !whole.isEmpty else { return }
        let list = whole.map(String.init).joined(separator: ",")
        try db.execute("""
            CREATE TEMP TABLE sink_gone ON COMMIT DROP AS
              SELECT o.customer_id FROM \(s).sink_customer_partition o
              WHERE o.partition IN (\(list)) AND NOT EXISTS (SELECT 1 FROM sink_stage_owner x WHERE x.customer_id = o.customer_id);
            DELETE FROM \(PostgresSchema.customer360.qualified) t USING sink_gone g WHERE t.customer_id = g.customer_id;
            DELETE FROM \(s).sink_customer_partition o USING sink_gone g WHERE o.customer_id = g.customer_id;
            """)
    }

    // MARK: Encoding

    private static func schedule(_ t: inout Tracked, _ id: String, _ n: Int64) {
        t.next[id] = n
        if n != Int64.max { t.due[n / Timestamp.millisecondsPerDay, default: []].append(id) }
    }

    /// Merges a staging table's rows into a mart by its grain, rewriting only rows whose values differ. Rows go in
    /// the order of the primary key, which walks its index in order (in `psql`, 100,000 changed customer rows merged in 583-596 ms against 641-687).
    static func upsert(_ t: PostgresSchema.Table, from stage: String) -> String {
        let names = t.columns.map(\.name)
        let nonKey = names.filter { !t.key.contains($0) }
        return "INSERT INTO \(t.qualified) AS t SELECT \(names.joined(separator: ", ")) FROM \(stage) ORDER BY \(t.key.joined(separator: ", ")) "
            + "ON CONFLICT (\(t.key.joined(separator: ", "))) DO UPDATE SET \(nonKey.map { "\($0) = EXCLUDED.\($0)" }.joined(separator: ", ")) "
            + "WHERE (\(nonKey.map { "t.\($0)" }.joined(separator: ", "))) IS DISTINCT FROM (\(nonKey.map { "EXCLUDED.\($0)" }.joined(separator: ", ")));\n"
    }

    /// A row's values in the binary form of their columns' kinds.
    static func append(_ row: [MartValue], _ kinds: [PostgresSchema.Kind], to copy: inout CopyBinary) {
        for (v, kind) in zip(row, kinds) {
            switch (v, kind) {
            case (.null, _), (.rate(nil), _), (.time(nil), _): copy.null()
            case let (.int(i), .double): copy.double(Double(i))
            case let (.int(i), _): copy.int64(i)
            case let (.rate(r?), _): copy.double(r)
            case let (.text(s), _): copy.text(s)
            case let (.bool(b), _): copy.bool(b)
            case let (.time(t?), _): copy.timestamp(unixMilliseconds: t.ms)
            }
        }
    }

    /// A value as a SQL literal (quoted, so that the column's type reads it: doubles exactly).
    static func literal(_ v: MartValue) -> String {
        switch v {
        case let .int(i): return String(i)
        case let .rate(r): return r.map { "'\($0.description)'" } ?? "NULL"
        case let .text(s): return PostgresSchema.literal(s)
        case let .bool(b): return b ? "true" : "false"
        case let .time(t): return t.map { "'\($0.description)'" } ?? "NULL"
        case .null: return "NULL"
        }
    }

    static func encodeOffsets(_ offsets: [String: Int64]) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        // (A dictionary of strings to integers always encodes.)
        return (try? encoder.encode(offsets)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    static func decodeOffsets(_ json: String) -> [String: Int64] {
        (try? JSONDecoder().decode([String: Int64].self, from: Data(json.utf8))) ?? [:]
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 15)]) }
        return String(decoding: out, as: UTF8.self)
    }

    static func unhex(_ s: String) -> [UInt8] {
        func v(_ c: UInt8) -> UInt8 { c >= 0x61 ? c - 0x61 + 10 : c >= 0x41 ? c - 0x41 + 10 : c - 0x30 }
        let u = Array(s.utf8)
        var out = [UInt8]()
        out.reserveCapacity(u.count / 2)
        var i = 0
        while i + 1 < u.count {
            out.append(v(u[i]) << 4 | v(u[i + 1]))
            i += 2
        }
        return out
    }
}

/// Customer rows on their way to `mart_customer_360`, in chunks of `chunkRows`: each chunk is copied (binary
/// `COPY`) into the staging table and merged into the mart by the server (libpq's asynchronous send) while the
/// next one is made here. While no merge runs, a chunk's rows stream out as they are made. New rows carry their
/// owning partition, which the merge keeps aside in `sink_stage_owner`.
private struct ChunkedCustomerRows {
    static let copyStatement = "COPY sink_stage_customer FROM STDIN WITH (FORMAT binary)"
    static let merge = PostgresSink.upsert(PostgresSchema.customer360, from: "sink_stage_customer") + """
        INSERT INTO sink_stage_owner SELECT customer_id, owner FROM sink_stage_customer WHERE owner IS NOT NULL;
        TRUNCATE sink_stage_customer;
        """
    static let kinds = PostgresSchema.customer360.columns.map(\.kind)

    let db: PostgresConnection
    let chunkRows: Int
    var copy = CopyBinary(capacity: 1 << 20)
    /// Rows handed to the server so far.
    var staged = 0
    /// The chunk's `COPY` is open: no merge is running.
    var streaming = true

    init(_ db: PostgresConnection, chunkRows: Int) throws(PostgresError) {
        self.db = db
        self.chunkRows = chunkRows
        try db.beginCopy(Self.copyStatement)
    }

    mutating func add(_ row: [MartValue], owner: Int32?, phase: (String) -> Void) throws(PostgresError) {
        copy.beginRow(fields: Self.kinds.count + 1)
        PostgresSink.append(row, Self.kinds, to: &copy)
        if let owner { copy.int32(owner) } else { copy.null() }
        if copy.rows >= chunkRows {
            try endChunk(phase: phase)
        } else if streaming, copy.bytes.count >= 1 << 20 {
            try db.putCopyData(copy.bytes)
            copy.removeBytes()
        }
    }

    /// Sends what is left and waits for the last merge; returns the rows staged.
    mutating func finish(phase: (String) -> Void) throws(PostgresError) -> Int {
        if copy.rows > 0 {
            try endChunk(phase: phase)
        } else if streaming {
            copy.finish()
            try db.putCopyData(copy.bytes)
            try db.endCopy()
        }
        try db.waitForSent()
        phase("upsert")
        return staged
    }

    private mutating func endChunk(phase: (String) -> Void) throws(PostgresError) {
        copy.finish()
        if !streaming {
            try db.waitForSent()
            phase("upsert")
            try db.beginCopy(Self.copyStatement)
        }
        try db.putCopyData(copy.bytes)
        try db.endCopy()
        staged += copy.rows
        try db.send(Self.merge)
        streaming = false
        copy = CopyBinary(capacity: 1 << 20)
        phase("rows+copy")
    }
}
