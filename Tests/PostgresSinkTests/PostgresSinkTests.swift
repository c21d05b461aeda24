import Checkpoints
import Consumer
import Events
import Foundation
import Kafka
import Marts
import Postgres
@testable import PostgresSink
import Simulation
import Synchronization
import Testing
import TestSupport

/// A consumer core over partitions `open` with the sink, checkpoints kept in memory.
func sinkCore(_ storage: MemoryCheckpointStorage, open: [Int32], until: Timestamp? = nil) throws -> ConsumerCore {
    var options = ConsumerOptions(stateDirectory: URL(fileURLWithPath: "/nonexistent"))
    options.riskTopic = nil
    options.until = until
    let c = ConsumerCore(options: options, storage: storage, logger: quiet)
    try c.start()
    try c.open(open)
    return c
}

func sink(_ uri: String, refresh: Duration = .seconds(5)) throws -> PostgresSink {
    var o = PostgresSink.Options(uri: uri)
    o.refreshInterval = refresh
    o.retryInterval = .zero
    o.chunkRows = 97  // writes of more rows go in several chunks, merged while the next is made
    return try PostgresSink(options: o, logger: quiet)
}

let stalledInput = messages(history)

/// For the tests of a server that stalls: a core and a sink (lock timeout 200 ms, reconnecting at once) whose first
/// write, of the first 3,000 events, is committed.
func committedOnce(_ server: PostgresServer, _ configure: (inout PostgresSink.Options) -> Void) throws
    -> (ConsumerCore, MemoryCheckpointStorage, PostgresSink) {
    let storage = MemoryCheckpointStorage()
    let core = try sinkCore(storage, open: [0, 1, 2, 3])
    var options = PostgresSink.Options(uri: server.uri())
    options.retryInterval = .zero
    options.lockTimeout = .milliseconds(200)
    configure(&options)
    let pg = try PostgresSink(options: options, logger: quiet)
    _ = core.apply(Array(stalledInput.prefix(3000)))
    #expect(core.checkpointAll(sinks: [pg], stop: nil))
    #expect(pg.commits == 1)
    return (core, storage, pg)
}

/// Checkpoint opportunities (for two minutes at most) until the sink commits its second write: then it is caught
/// up, connected, and the tables are the checkpoints'.
func expectCatchUp(_ core: ConsumerCore, _ storage: MemoryCheckpointStorage, _ pg: PostgresSink, _ server: PostgresServer) throws {
    let deadline = ContinuousClock.now + .seconds(120)
    while pg.commits == 1 && ContinuousClock.now < deadline {
        #expect(core.checkpointAll(sinks: [pg], stop: nil))
        Thread.sleep(forTimeInterval: 0.05)
    }
    #expect(pg.commits == 2)
    #expect(pg.sinkStatus?.connected == true && pg.sinkStatus?.checkpointsBehind == 0)
    try expectDatabaseEquals(storage.partitions.values.map(\.state), try PostgresConnection(uri: server.uri()))
}

/// A guard against a hang for the tests of a lock held by another session: unless the returned signal is stopped
/// first, the session's backend `pid` is terminated after a minute, and whatever waited for its lock then goes on
/// (which the test's expectations catch).
func terminateAfterAMinute(_ server: PostgresServer, backend pid: String) -> StopSignal {
    let finished = StopSignal(handleSignals: false)
    Thread {
        finished.sleep(.seconds(60))
        if !finished.isStopped, let admin = try? PostgresConnection(uri: server.uri()) {
            _ = try? admin.execute("SELECT pg_terminate_backend(\(pid))")
        }
    }.start()
    return finished
}

/// Real PostgreSQL (a private cluster per test): the sink's tables are the export's, exactly once.
@Suite(.serialized) struct PostgresSinkTests {
    @Test func everyCommitEqualsTheExportOfItsCheckpointUnderShuffleAndDuplicates() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        var rng = Xoshiro(seed: 7)
        var events = history
        events.shuffle(using: &rng)
        let input = messages(events)
        let storage = MemoryCheckpointStorage()
        let core = try sinkCore(storage, open: [0, 1, 2, 3])
        let pg = try sink(server.uri())
        let db = try PostgresConnection(uri: server.uri())
        var i = 0, commits = 0
        while i < input.count {
            let n = Int(rng.next() % 9000) + 500
            var batch = Array(input[i..<min(i + n, input.count)])
            batch += batch.prefix(Int(rng.next() % 50))  // redelivered: duplicates change nothing
            _ = core.apply(batch)
            i += n
            #expect(core.checkpointAll(sinks: [pg], stop: nil))
            #expect(pg.commits == commits + 1, "a write per checkpoint")
            if commits == 0 { #expect(pg.customerRowsWritten > pg.options.chunkRows, "the first write spans several chunks") }
            commits = pg.commits
            // What a reader sees after the commit is the whole checkpoint.
            try expectDatabaseEquals(storage.partitions.values.map(\.state), db)
        }
        #expect(pg.customerRowsWritten < 4 * Set(history.map(\.customerID)).count, "only changed rows are written")
        let positions = try db.execute("SELECT count(*) FROM undercurrent.sink_positions").rows[0][0]
        #expect(positions == "4")
        // A checkpoint that changed nothing writes nothing.
        #expect(core.checkpointAll(sinks: [pg], stop: nil))
        #expect(pg.commits == commits)
    }

    /// With `until`, a partition's checkpoints stay at its first message after the time while later messages up
    /// to it are still applied: checkpoints with the same offsets hold different states. Every commit is still
    /// its checkpoint's export, also for a sink of a new process that finds the database a checkpoint behind at
    /// the same offsets (before, the sink took equal offsets for an equal state and kept the older rows).
    @Test func checkpointsHeldAtTheSameOffsetsByUntilAreEachWrittenWhole() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        var rng = Xoshiro(seed: 5)
        let events = history.shuffled(using: &rng)
        let input = messages(events)
        let until = history[history.count / 2].occurredAt
        let storage = MemoryCheckpointStorage()
        let core = try sinkCore(storage, open: [0, 1, 2, 3], until: until)
        let pg = try sink(server.uri())
        let db = try PostgresConnection(uri: server.uri())
        var i = 0, heldCommits = 0
        while i < input.count {
            let n = Int(rng.next() % 3000) + 200
            let before = storage.partitions.mapValues(\.offsets)
            _ = core.apply(Array(input[i..<min(i + n, input.count)]))
            i += n
            #expect(core.checkpointAll(sinks: [pg], stop: nil))
            if !before.isEmpty && storage.partitions.contains(where: { before[$0.key] == $0.value.offsets }) { heldCommits += 1 }
            try expectDatabaseEquals(storage.partitions.values.map(\.state), db)
        }
        #expect(heldCommits > 0, "some checkpoints kept a partition's offsets while its state changed")
        #expect(MartSnapshot(storage.partitions.values.map(\.state)).accepted == events.filter { $0.occurredAt <= until }.count)

        // A new process: its checkpoints moved on (the same held offsets, more events applied) while the database
        // stayed at the older ones; its sink's first write makes the tables the checkpoint's.
        let more = messages(events.filter { $0.occurredAt <= until }.prefix(400).map { e in
            Event(eventID: e.eventID + "-late", occurredAt: e.occurredAt, customerID: e.customerID, payload: e.payload)
        })
        let tail = more.map { m in
            KafkaMessage(topic: m.topic, partition: m.partition, offset: core.nextOffset(m.topicPartition)! + m.offset, key: m.key, value: m.value,
                         timestampMs: m.timestampMs)
        }
        let offsetsBefore = storage.partitions.mapValues(\.offsets)
        _ = core.apply(tail)
        #expect(core.checkpointAll(sinks: [], stop: nil))
        #expect(storage.partitions.mapValues(\.offsets) == offsetsBefore)
        let restarted = try sinkCore(storage, open: [0, 1, 2, 3], until: until)
        let fresh = try sink(server.uri())
        #expect(restarted.checkpointAll(sinks: [fresh], stop: nil))
        #expect(fresh.commits == 1)
        try expectDatabaseEquals(storage.partitions.values.map(\.state), db)
    }

    @Test func consumersSharingADatabaseGiveTheTablesOfOne() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let input = messages(history)
        let sa = MemoryCheckpointStorage(), sb = MemoryCheckpointStorage()
        let a = try sinkCore(sa, open: [0, 1]), b = try sinkCore(sb, open: [2, 3])
        let pa = try sink(server.uri(), refresh: .zero), pb = try sink(server.uri(), refresh: .zero)
        // B runs ahead of A in event time, then A catches up: each write sees the other's partitions.
        let split = input.count / 3
        _ = b.apply(Array(input[..<(2 * split)]))
        #expect(b.checkpointAll(sinks: [pb], stop: nil))
        _ = a.apply(Array(input[..<split]))
        #expect(a.checkpointAll(sinks: [pa], stop: nil))
        _ = b.apply(Array(input[(2 * split)...]))
        #expect(b.checkpointAll(sinks: [pb], stop: nil))
        _ = a.apply(Array(input[split...]))
        #expect(a.checkpointAll(sinks: [pa], stop: nil))
        // B's customer rows were computed at an older as-of; its next chance brings them to A's.
        #expect(b.checkpointAll(sinks: [pb], stop: nil))
        let db = try PostgresConnection(uri: server.uri())
        #expect(try db.execute("SELECT rows_current FROM undercurrent.sink_status").rows[0][0] == "t")
        try expectDatabaseEquals(Array(sa.partitions.values.map(\.state)) + sb.partitions.values.map(\.state), db)

        // The consumer with the latest events loses its checkpoints and starts over: its partitions are rewritten
        // with a shorter history, the marts' as-of goes back, and the other's rows, computed at the later as-of,
        // are computed again at its next chance.
        let aAhead = (a.asOf ?? Timestamp(ms: 0)) > (b.asOf ?? Timestamp(ms: 0))
        let (keptStorage, keptCore, keptSink) = aAhead ? (sb, b, pb) : (sa, a, pa)
        let restarted = MemoryCheckpointStorage()
        let fresh = try sinkCore(restarted, open: aAhead ? [0, 1] : [2, 3])
        _ = fresh.apply(Array(input[..<(input.count / 2)]))
        #expect(fresh.checkpointAll(sinks: [try sink(server.uri(), refresh: .zero)], stop: nil))
        let asOfNow = [fresh.asOf, keptCore.asOf].compactMap { $0 }.max()!
        #expect(asOfNow < max(a.asOf!, b.asOf!), "the marts' as-of went back")
        #expect(keptCore.checkpointAll(sinks: [keptSink], stop: nil))
        try expectDatabaseEquals(Array(keptStorage.partitions.values.map(\.state)) + restarted.partitions.values.map(\.state), db)
    }

    /// A consumer of other topics (a replayed history's, `--topic-prefix replay.`) pointed at the database of the
    /// consumer of the live topics: refused at start, before `--rebuild` could empty anything, and refused at every
    /// write if the other's marts arrive later; the live consumer's tables are never touched. (Before, each wrote the
    /// partitions it held over the other's, and each found the other's positions and rewrote its partitions whole.)
    @Test func aConsumerOfOtherTopicsNeitherWritesOverNorEmptiesAnothersMarts() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let input = messages(history)
        func replaySink(rebuild: Bool = false) throws -> PostgresSink {
            var o = PostgresSink.Options(uri: server.uri())
            o.inputTopics = Set(Topics.inputs.map { "replay." + $0 })
            o.retryInterval = .zero
            o.rebuild = rebuild
            return try PostgresSink(options: o, logger: quiet)
        }
        // Connected before the live consumer has written anything: nothing to refuse yet.
        let early = try replaySink()
        let live = MemoryCheckpointStorage()
        let core = try sinkCore(live, open: [0, 1])
        _ = core.apply(Array(input[..<(input.count / 2)]))
        #expect(core.checkpointAll(sinks: [try sink(server.uri())], stop: nil))
        let db = try PostgresConnection(uri: server.uri())
        try expectDatabaseEquals(Array(live.partitions.values.map(\.state)), db)

        for rebuild in [false, true] {
            #expect {
                _ = try replaySink(rebuild: rebuild)
            } throws: { e in
                let e = e as! PostgresError
                return e.code == .rejected && e.message.hasPrefix("the marts in schema undercurrent are another consumer's: partition 0's position there is of topics billing")
                    && e.message.contains("this consumer reads replay.billing, replay.engagement, replay.payments")
            }
        }
        let other = MemoryCheckpointStorage()
        let otherCore = try sinkCore(other, open: [2, 3])
        _ = otherCore.apply(Array(input[..<(input.count / 2)]))
        #expect(otherCore.checkpointAll(sinks: [early], stop: nil), "the consumer's own checkpoints go on")
        #expect(early.commits == 0 && early.sinkStatus?.checkpointsBehind == 1)
        try expectDatabaseEquals(Array(live.partitions.values.map(\.state)), db)
    }

    /// Another consumer's aggregates in the database that cannot be read: nothing commits on top of them (the
    /// tables stay as they were, and the sink is not taken for disconnected), until their owner writes them again.
    @Test func unreadableAggregatesOfAnotherPartitionStopWritesUntilTheirOwnerRewritesThem() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let input = messages(history)
        let half = input.count / 2
        let sa = MemoryCheckpointStorage(), sb = MemoryCheckpointStorage()
        let a = try sinkCore(sa, open: [0, 1]), b = try sinkCore(sb, open: [2, 3])
        let pa = try sink(server.uri(), refresh: .zero), pb = try sink(server.uri(), refresh: .zero)
        _ = a.apply(Array(input[..<half]))
        _ = b.apply(Array(input[..<half]))
        #expect(a.checkpointAll(sinks: [pa], stop: nil))
        #expect(b.checkpointAll(sinks: [pb], stop: nil))
        let db = try PostgresConnection(uri: server.uri())
        // As if partition 2's last write had left bytes no sink can read.
        try db.execute("UPDATE undercurrent.sink_positions SET aggregates = '\\x00', version = nextval('undercurrent.sink_version') WHERE partition = 2")
        let revenue = "SELECT * FROM undercurrent.mart_revenue_monthly ORDER BY month, plan"
        let before = try db.execute(revenue).rows
        let commits = pa.commits
        _ = a.apply(Array(input[half...]))
        #expect(a.checkpointAll(sinks: [pa], stop: nil), "the consumer's own checkpoint succeeds")
        #expect(pa.commits == commits, "nothing committed over unreadable aggregates")
        #expect(pa.sinkStatus?.connected == true, "not taken for an outage")
        #expect(pa.sinkStatus?.checkpointsBehind == 1)
        #expect(try db.execute(revenue).rows == before)
        // Their owner's next checkpoint writes them again; the other consumer then catches up.
        _ = b.apply(Array(input[half...]))
        #expect(b.checkpointAll(sinks: [pb], stop: nil))
        #expect(a.checkpointAll(sinks: [pa], stop: nil))
        #expect(pa.commits == commits + 1)
        #expect(b.checkpointAll(sinks: [pb], stop: nil))  // its rows to the as-of the other's events moved
        try expectDatabaseEquals(Array(sa.partitions.values.map(\.state)) + sb.partitions.values.map(\.state), db)
    }

    @Test func aDatabaseBehindOrAheadOfTheCheckpointsIsRewrittenToThem() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let input = messages(history)
        let db = try PostgresConnection(uri: server.uri())
        // The whole history written.
        let s1 = MemoryCheckpointStorage()
        let c1 = try sinkCore(s1, open: [0, 1, 2, 3])
        _ = c1.apply(input)
        #expect(c1.checkpointAll(sinks: [try sink(server.uri())], stop: nil))
        // A consumer with a rebuilt, shorter history (its checkpoints lost): every partition's position
        // differs, so its rows are written whole and customers it has not seen yet leave the tables.
        let s2 = MemoryCheckpointStorage()
        let c2 = try sinkCore(s2, open: [0, 1, 2, 3])
        _ = c2.apply(Array(input.prefix(input.count / 2)))
        let p2 = try sink(server.uri())
        #expect(c2.checkpointAll(sinks: [p2], stop: nil))
        try expectDatabaseEquals(s2.partitions.values.map(\.state), db)
        // --rebuild: every row is written again, and a row of a partition no consumer writes any more (partition
        // 7, of a consumer that had more partitions) is gone.
        try db.execute("""
            INSERT INTO undercurrent.mart_customer_360 (customer_id) VALUES ('cus_elsewhere');
            INSERT INTO undercurrent.sink_customer_partition VALUES ('cus_elsewhere', 7);
            """)
        var rebuild = PostgresSink.Options(uri: server.uri())
        rebuild.rebuild = true
        let rebuilt = try PostgresSink(options: rebuild, logger: quiet)
        let again = try sinkCore(s2, open: [0, 1, 2, 3])
        #expect(again.checkpointAll(sinks: [rebuilt], stop: nil))
        #expect(rebuilt.customerRowsWritten == MartSnapshot(s2.partitions.values.map(\.state)).customers.count)
        try expectDatabaseEquals(s2.partitions.values.map(\.state), db)
        // The same consumer restarted (a new sink, as a new process): positions match, nothing is rewritten.
        let p3 = try sink(server.uri())
        let c3 = try sinkCore(s2, open: [0, 1, 2, 3])
        #expect(c3.checkpointAll(sinks: [p3], stop: nil))
        #expect(p3.customerRowsWritten == 0)
        // Its checkpoints move on while the database does not hear of it (a crash before the commit):
        // the next sink finds the database behind and catches up.
        _ = c3.apply(Array(input[(input.count / 2)..<(3 * input.count / 4)]))
        #expect(c3.checkpointAll(sinks: [], stop: nil))
        let p4 = try sink(server.uri())
        #expect(c3.checkpointAll(sinks: [p4], stop: nil))
        try expectDatabaseEquals(s2.partitions.values.map(\.state), db)
    }

    @Test func serverAwayThenBackCatchesUpAndTablesDroppedOrAlteredAreRefilled() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let input = messages(history)
        let storage = MemoryCheckpointStorage()
        let core = try sinkCore(storage, open: [0, 1, 2, 3])
        let pg = try sink(server.uri())
        _ = core.apply(Array(input.prefix(2000)))
        #expect(core.checkpointAll(sinks: [pg], stop: nil))
        try server.stopServer()
        // Down: checkpoints go on, the sink counts how far behind it is.
        _ = core.apply(Array(input[2000..<6000]))
        #expect(core.checkpointAll(sinks: [pg], stop: nil))
        _ = core.apply(Array(input[6000..<9000]))
        #expect(core.checkpointAll(sinks: [pg], stop: nil))
        let down = try #require(pg.sinkStatus)
        #expect(!down.connected)
        #expect(down.checkpointsBehind == 2)
        #expect(pg.wantsCheckpoint)
        try server.start()
        // Nothing new: the next checkpoint opportunity catches the tables up.
        #expect(core.checkpointAll(sinks: [pg], stop: nil))
        #expect(pg.sinkStatus?.checkpointsBehind == 0)
        #expect(pg.sinkStatus?.connected == true)
        let db = try PostgresConnection(uri: server.uri())
        try expectDatabaseEquals(storage.partitions.values.map(\.state), db)
        // Someone drops one table and alters another.
        try server.psql("DROP TABLE undercurrent.mart_customer_360 CASCADE; ALTER TABLE undercurrent.mart_engagement DROP COLUMN feature_events")
        _ = core.apply(Array(input[9000...]))
        #expect(core.checkpointAll(sinks: [pg], stop: nil))
        try expectDatabaseEquals(storage.partitions.values.map(\.state), db)
        // Restarted under the sink (an immediate shutdown, as a crash): the next write reconnects.
        try server.restartImmediately()
        _ = core.apply(input.suffix(10))  // duplicates only: nothing changes, the sink still verifies
        #expect(core.checkpointAll(sinks: [pg], stop: nil, force: true))
        #expect(core.checkpointAll(sinks: [pg], stop: nil, force: true))
        let db2 = try PostgresConnection(uri: server.uri())
        try expectDatabaseEquals(storage.partitions.values.map(\.state), db2)
        // --rebuild while the server is away at start: the tables are emptied once it is back, before the first
        // write, so a row no partition writes any more is gone.
        try db2.execute("""
            INSERT INTO undercurrent.mart_customer_360 (customer_id) VALUES ('cus_elsewhere');
            INSERT INTO undercurrent.sink_customer_partition VALUES ('cus_elsewhere', 7);
            """)
        try server.stopServer()
        var options = PostgresSink.Options(uri: server.uri())
        options.rebuild = true
        options.retryInterval = .zero
        let rebuilding = try PostgresSink(options: options, logger: quiet)
        try server.start()
        let restarted = try sinkCore(storage, open: [0, 1, 2, 3])
        #expect(restarted.checkpointAll(sinks: [rebuilding], stop: nil))
        #expect(rebuilding.customerRowsWritten == MartSnapshot(storage.partitions.values.map(\.state)).customers.count)
        try expectDatabaseEquals(storage.partitions.values.map(\.state), try PostgresConnection(uri: server.uri()))
    }

    /// Another session holding a lock on a mart table (a `LOCK TABLE`, an `ALTER`, a `VACUUM FULL` in a long
    /// transaction) holds a write up for the sink's lock timeout, not the consumer for as long as the lock is held:
    /// the checkpoint goes on, the sink counts itself behind and leaves the tables alone for a while, and it catches
    /// up once the lock is gone. (Before, the consuming thread waited for the lock.)
    @Test(.timeLimit(.minutes(3))) func aTableLockedByAnotherSessionHoldsUpTheSinkNotTheConsumer() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let (core, storage, pg) = try committedOnce(server) { $0.lockRetryInterval = .seconds(5) }

        let locker = try PostgresConnection(uri: server.uri())
        let lockerPID = try #require(try locker.execute("SELECT pg_backend_pid()").rows.first?.first ?? nil)
        try locker.execute("BEGIN; LOCK TABLE undercurrent.mart_customer_360 IN ACCESS EXCLUSIVE MODE")
        // If the sink waited for the lock, the write would succeed after the guard's minute (caught below).
        let finished = terminateAfterAMinute(server, backend: lockerPID)
        defer { finished.stop() }
        let writes = storage.writes
        _ = core.apply(Array(stalledInput[3000..<6000]))
        #expect(core.checkpointAll(sinks: [pg], stop: nil))
        let failedAt = ContinuousClock.now
        #expect(storage.writes > writes, "the consumer's checkpoint was written")
        #expect(pg.commits == 1 && pg.lockTimeouts == 1)
        #expect(pg.sinkStatus?.checkpointsBehind == 1 && pg.sinkStatus?.connected == true)
        // Within the retry interval the tables are left alone: no second wait for the lock.
        _ = core.apply(Array(stalledInput[6000..<9000]))
        #expect(core.checkpointAll(sinks: [pg], stop: nil))
        #expect(pg.lockTimeouts == 1 || ContinuousClock.now - failedAt >= pg.options.lockRetryInterval)
        #expect(pg.sinkStatus?.checkpointsBehind == 2)

        finished.stop()
        try locker.execute("ROLLBACK")
        // Once the retry interval is over, the next checkpoint opportunity catches the tables up.
        try expectCatchUp(core, storage, pg, server)
    }

    /// Another consumer sharing the database is in a long write (a first load of many customers; here a session that
    /// holds the sink's write lock): a write or a connection that finds the lock taken does not wait for it. The
    /// consumer's checkpoints go on, the sink counts itself behind, and it writes at the next checkpoint opportunity
    /// once the lock is free, not after the pause a locked table gets. (Before, each write waited for the lock up to the
    /// lock timeout, then left the tables alone for the retry interval with a warning about a locked table.)
    @Test(.timeLimit(.minutes(3))) func anotherConsumersLongWriteHoldsUpNeitherThisConsumerNorItsTables() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        // Lock waits and pauses far longer than the test: a write that waited for the lock would wait for the guard
        // below, and one that paused would not catch up (both caught by the expectations).
        let (core, storage, pg) = try committedOnce(server) {
            $0.lockTimeout = .seconds(600)
            $0.lockRetryInterval = .seconds(600)
        }
        let sibling = try PostgresConnection(uri: server.uri())
        let siblingPID = try #require(try sibling.execute("SELECT pg_backend_pid()").rows.first?.first ?? nil)
        try sibling.execute("BEGIN")
        try sibling.query("SELECT pg_advisory_xact_lock($1)", [String(PostgresSchema.lockKey)])
        let finished = terminateAfterAMinute(server, backend: siblingPID)
        defer { finished.stop() }
        for (n, range) in [3000..<4000, 4000..<5000, 5000..<6000].enumerated() {
            let writes = storage.writes
            _ = core.apply(Array(stalledInput[range]))
            #expect(core.checkpointAll(sinks: [pg], stop: nil))
            #expect(storage.writes > writes, "the consumer's checkpoint was written")
            #expect(pg.commits == 1 && pg.writeLockBusy == n + 1 && pg.lockTimeouts == 0)
            #expect(pg.sinkStatus?.checkpointsBehind == n + 1 && pg.sinkStatus?.connected == true)
        }
        // A consumer that starts meanwhile: its connection is put off the same way, without an error.
        var lateOptions = PostgresSink.Options(uri: server.uri())
        lateOptions.lockTimeout = .seconds(600)
        lateOptions.retryInterval = .zero
        let late = try PostgresSink(options: lateOptions, logger: quiet)
        #expect(late.db == nil && late.writeLockBusy == 1 && late.lockTimeouts == 0)

        finished.stop()
        try sibling.execute("ROLLBACK")
        _ = core.apply(Array(stalledInput[6000..<7000]))
        #expect(core.checkpointAll(sinks: [pg], stop: nil))
        #expect(pg.commits == 2 && pg.lockTimeouts == 0)
        #expect(pg.sinkStatus?.checkpointsBehind == 0)
        try expectDatabaseEquals(storage.partitions.values.map(\.state), try PostgresConnection(uri: server.uri()))
        late.checkpointed([])
        #expect(late.db != nil && late.sinkStatus?.connected == true)
    }

    /// The write lock found taken at every try for the retry interval (here at once): the next write queues for it,
    /// so that other writers cannot starve this one, up to the lock timeout; after that it is a locked table's case.
    @Test(.timeLimit(.minutes(3))) func aWriteLockTakenForLongIsQueuedForUpToTheLockTimeout() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let (core, storage, pg) = try committedOnce(server) { $0.lockRetryInterval = .zero }
        let sibling = try PostgresConnection(uri: server.uri())
        try sibling.execute("BEGIN")
        try sibling.query("SELECT pg_advisory_xact_lock($1)", [String(PostgresSchema.lockKey)])
        _ = core.apply(Array(stalledInput[3000..<4000]))
        #expect(core.checkpointAll(sinks: [pg], stop: nil))
        #expect(pg.writeLockBusy == 1 && pg.lockTimeouts == 0)
        _ = core.apply(Array(stalledInput[4000..<5000]))
        #expect(core.checkpointAll(sinks: [pg], stop: nil))
        #expect(pg.writeLockBusy == 1 && pg.lockTimeouts == 1, "queued for the lock, then gave up after the lock timeout")
        #expect(pg.sinkStatus?.checkpointsBehind == 2 && pg.sinkStatus?.connected == true)
        try sibling.execute("ROLLBACK")
        try expectCatchUp(core, storage, pg, server)
    }

    /// The sink's backend stops answering while its host still acknowledges (here it is stopped with SIGSTOP, as a
    /// wedged process would be): TCP keepalives see nothing wrong, so the connection's own response timeout gives
    /// it up, the consumer goes on, and the sink catches up on a new connection once the backend is gone. (Before,
    /// the consuming thread waited for the backend for as long as it was stopped.)
    @Test(.timeLimit(.minutes(3))) func aBackendThatStopsAnsweringHoldsUpTheSinkNotTheConsumer() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let (core, storage, pg) = try committedOnce(server) { $0.lockRetryInterval = .zero }
        // The sink's connection has its options' response timeout (60 s); a second here, set only now, so that the
        // first write (the schema's creation included) is not held to it on a loaded machine.
        let connection = try #require(pg.db)
        #expect(connection.responseTimeout == pg.options.responseTimeout)
        connection.responseTimeout = .seconds(1)

        let admin = try PostgresConnection(uri: server.uri())
        let backend = try #require(try admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'undercurrent-marts-consumer'").rows.first?.first ?? nil)
        let pid = try #require(pid_t(backend))
        #expect(kill(pid, SIGSTOP) == 0)
        // A guard against a hang: the backend goes on after a minute (and the write then succeeds, which the
        // expectations below catch).
        let finished = StopSignal(handleSignals: false)
        defer {
            finished.stop()
            kill(pid, SIGCONT)
        }
        Thread {
            finished.sleep(.seconds(60))
            if !finished.isStopped { kill(pid, SIGCONT) }
        }.start()
        let writes = storage.writes
        _ = core.apply(Array(stalledInput[3000..<6000]))
        #expect(core.checkpointAll(sinks: [pg], stop: nil))
        #expect(storage.writes > writes, "the consumer's checkpoint was written")
        #expect(pg.commits == 1)
        #expect(pg.sinkStatus?.connected == false && pg.sinkStatus?.checkpointsBehind == 1)

        // The stopped backend's transaction holds its row locks until it goes: a new connection's writes time out
        // on them meanwhile. Once it is gone, the next checkpoint opportunity catches the tables up.
        finished.stop()
        #expect(kill(pid, SIGCONT) == 0)
        try expectCatchUp(core, storage, pg, server)
    }

    @Test(.timeLimit(.minutes(2))) func aConnectionCutWhileAChunkMergesShowsNothingAndTheNextCheckpointCatchesUp() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let storage = MemoryCheckpointStorage()
        let core = try sinkCore(storage, open: [0, 1, 2, 3])
        let pg = try sink(server.uri())
        let db = try PostgresConnection(uri: server.uri())
        // Someone holds the customer table: the first chunk's merge waits for it, the next chunk is made meanwhile.
        let blocker = try PostgresConnection(uri: server.uri())
        try blocker.execute("BEGIN; LOCK TABLE undercurrent.mart_customer_360 IN ACCESS EXCLUSIVE MODE")
        _ = core.apply(messages(history))
        let done = Latch()
        let wrote = Mutex(false)
        let box = UncheckedBox(core)
        Thread {
            let ok = box.value.checkpointAll(sinks: [pg], stop: nil)
            wrote.withLock { $0 = ok }
            done.open()
        }.start()
        // Seen waiting in the server, the sink's connection is cut mid-merge.
        var pid: String?
        while pid == nil, !done.opened {
            pid = try db.execute("""
                SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'INSERT INTO undercurrent.mart_customer_360 %'
                """).rows.first?[0] ?? nil
            if pid == nil { Thread.sleep(forTimeInterval: 0.005) }
        }
        let merging = try #require(pid, "the sink's merge never waited on the lock")
        try db.execute("SELECT pg_terminate_backend(\(merging))")
        done.wait()
        try blocker.execute("ROLLBACK")
        #expect(wrote.withLock { $0 }, "the consumer's own checkpoint does not depend on the database")
        #expect(pg.sinkStatus?.connected == false)
        #expect(pg.sinkStatus?.checkpointsBehind == 1)
        // Nothing of the cut write is visible: no row, no position.
        #expect(try db.execute("SELECT count(*) FROM undercurrent.mart_customer_360").rows[0][0] == "0")
        #expect(try db.execute("SELECT count(*) FROM undercurrent.sink_positions").rows[0][0] == "0")
        // The next checkpoint opportunity connects again and writes the whole checkpoint.
        #expect(core.checkpointAll(sinks: [pg], stop: nil, force: true))
        #expect(pg.sinkStatus?.connected == true)
        try expectDatabaseEquals(storage.partitions.values.map(\.state), db)
    }

    /// A new process (its sink has no partition's aggregates cached) whose next checkpoint moves only one of its
    /// partitions: the monthly marts still sum every partition, as the export does.
    @Test func aRestartWhereOnlySomePartitionsMoveKeepsTheMonthlyMartsWhole() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let input = messages(history)
        let storage = MemoryCheckpointStorage()
        let db = try PostgresConnection(uri: server.uri())
        let first = try sinkCore(storage, open: [0, 1, 2, 3])
        _ = first.apply(Array(input.prefix(input.count / 2)))
        #expect(first.checkpointAll(sinks: [try sink(server.uri())], stop: nil))
        try expectDatabaseEquals(storage.partitions.values.map(\.state), db)
        let restarted = try sinkCore(storage, open: [0, 1, 2, 3])
        let rest = input.suffix(from: input.count / 2).filter { $0.partition == 0 }
        #expect(!rest.isEmpty)
        _ = restarted.apply(Array(rest))
        #expect(restarted.checkpointAll(sinks: [try sink(server.uri())], stop: nil))
        try expectDatabaseEquals(storage.partitions.values.map(\.state), db)
    }

    /// A database the previous schema version wrote is brought up in place: the index version 2 drops is gone,
    /// the version recorded, and nothing rewritten; a schema newer than the sink's stops it.
    /// What the marts have not seen reaches the database too: `history_starts` holds where each input
    /// topic-partition's history starts, as the consumer's own history records it, and `sink_status` says whether
    /// it is complete. A history deleted by retention (the first 100 billing messages of partition 0) shows there;
    /// a database written before the table existed gets it at the next write, with no position moved.
    @Test func whereTheHistoryStartsIsInTheDatabaseAndSinkStatusSaysWhetherItIsComplete() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let db = try PostgresConnection(uri: server.uri())
        let historyRows = """
            SELECT partition, topic, first_offset, missed_messages, gap, (extract(epoch FROM first_event_time) * 1000)::bigint
            FROM undercurrent.history_starts ORDER BY partition, topic
            """
        func expected(_ core: ConsumerCore) -> [[String?]] {
            core.history.sorted { ($0.partition, $0.topic) < ($1.partition, $1.topic) }.map {
                [String($0.partition), $0.topic, String($0.firstOffset), String($0.missedMessages), $0.gap?.rawValue, $0.firstTimestampMs.map(String.init)]
            }
        }
        let status = "SELECT history_complete, missed_messages FROM undercurrent.sink_status"

        // The whole history.
        let whole = try sinkCore(MemoryCheckpointStorage(), open: [0, 1, 2, 3])
        _ = whole.apply(messages(history))
        #expect(whole.checkpointAll(sinks: [try sink(server.uri())], stop: nil))
        #expect(whole.history.count == 12 && whole.history.allSatisfy { !$0.isPartial })
        #expect(try db.execute(historyRows).rows == expected(whole))
        #expect(try db.execute(status).rows == [["t", "0"]])

        // Partition 0's first 100 billing messages gone before the consumer read it (a rebuilt consumer).
        let input = messages(history).map { m in
            var m = m
            if m.topic == "billing" && m.partition == 0 { m.offset += 100 }
            return m
        }
        let storage = MemoryCheckpointStorage()
        let partial = try sinkCore(storage, open: [0, 1, 2, 3])
        _ = partial.apply(input)
        let rebuilt = try sink(server.uri())
        #expect(partial.checkpointAll(sinks: [rebuilt], stop: nil))
        #expect(rebuilt.commits == 1)
        let rows = try db.execute(historyRows).rows
        #expect(rows == expected(partial))
        #expect(rows.contains { $0[0] == "0" && $0[1] == "billing" && $0[2] == "100" && $0[3] == "100" && $0[4] == "deleted" })
        #expect(rows.filter { $0[3] != "0" }.count == 1)
        #expect(try db.execute(status).rows == [["f", "100"]])

        // A schema of version 2 (no history_starts): migrated, and the table filled at the next write although no
        // partition's position moved.
        try db.execute("DROP TABLE undercurrent.history_starts CASCADE; UPDATE undercurrent.sink_schema_version SET version = 2")
        let positions = try db.execute("SELECT partition, version FROM undercurrent.sink_positions ORDER BY partition").rows
        let migrated = try sink(server.uri())
        #expect(try db.execute("SELECT version FROM undercurrent.sink_schema_version").rows == [["\(PostgresSchema.version)"]])
        #expect(try db.execute(historyRows).rows.isEmpty)
        let restarted = try sinkCore(storage, open: [0, 1, 2, 3])
        #expect(restarted.checkpointAll(sinks: [migrated], stop: nil))
        #expect(migrated.commits == 1 && migrated.customerRowsWritten == 0)
        #expect(try db.execute("SELECT partition, version FROM undercurrent.sink_positions ORDER BY partition").rows == positions)
        #expect(try db.execute(historyRows).rows == rows)
        #expect(try db.execute(status).rows == [["f", "100"]])
        // Nothing changed: the next checkpoint writes nothing.
        #expect(restarted.checkpointAll(sinks: [migrated], stop: nil))
        #expect(migrated.commits == 1)
    }

    @Test func anOlderSchemaIsMigratedInPlaceAndANewerOneRefused() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let storage = MemoryCheckpointStorage()
        let db = try PostgresConnection(uri: server.uri())
        let core = try sinkCore(storage, open: [0, 1, 2, 3])
        _ = core.apply(messages(history))
        #expect(core.checkpointAll(sinks: [try sink(server.uri())], stop: nil))
        // As version 1 left it.
        try db.execute("""
            CREATE INDEX sink_customer_partition_partition ON undercurrent.sink_customer_partition (partition);
            UPDATE undercurrent.sink_schema_version SET version = 1;
            """)
        let positions = "SELECT partition, version, offsets::text FROM undercurrent.sink_positions ORDER BY partition"
        let before = try db.execute(positions).rows
        let index = "SELECT count(*) FROM pg_indexes WHERE schemaname = 'undercurrent' AND indexname = 'sink_customer_partition_partition'"
        #expect(try db.execute(index).rows == [["1"]])

        let migrated = try sink(server.uri())
        #expect(try db.execute("SELECT version FROM undercurrent.sink_schema_version").rows == [["\(PostgresSchema.version)"]])
        #expect(try db.execute(index).rows == [["0"]])
        #expect(try db.execute(positions).rows == before, "no table was recreated")
        let restarted = try sinkCore(storage, open: [0, 1, 2, 3])
        #expect(restarted.checkpointAll(sinks: [migrated], stop: nil))
        #expect(migrated.customerRowsWritten == 0, "the rows were the checkpoint's already")
        try expectDatabaseEquals(storage.partitions.values.map(\.state), db)

        try db.execute("UPDATE undercurrent.sink_schema_version SET version = \(PostgresSchema.version + 1)")
        #expect {
            _ = try sink(server.uri())
        } throws: { e in
            (e as? PostgresError).map { $0.code == .rejected && $0.message.contains("newer than this sink's \(PostgresSchema.version)") } == true
        }
        #expect(try db.execute(positions).rows == before)
    }

    @Test func binaryCopyReadsBackAsTheValuesWritten() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let db = try PostgresConnection(uri: server.uri())
        try db.execute("CREATE TABLE t (n bigint, i integer, d double precision, b boolean, s text, at timestamptz)")
        let texts = ["tab\there", "new\nline", "back\\slash", "", "ünïcødé ✓", "\\N"]
        let ints: [Int64] = [0, -1, Int64.max, Int64.min, 1_234_567_890_123]
        let doubles = [0.1, -2.5e-300, 1.0 / 3.0, 4_900.0, -0.0]
        // Before and after PostgreSQL's epoch (2000-01-01), and with milliseconds.
        let times: [Int64] = [0, 946_684_799_999, 946_684_800_000, 1_733_400_000_123]
        var copy = CopyBinary()
        for k in 0..<6 {
            copy.beginRow(fields: 6)
            copy.int64(ints[k % ints.count])
            copy.int32(Int32(k) - 3)
            copy.double(doubles[k % doubles.count])
            copy.bool(k % 2 == 0)
            copy.text(texts[k])
            copy.timestamp(unixMilliseconds: times[k % times.count])
        }
        copy.beginRow(fields: 6)
        for _ in 0..<6 { copy.null() }
        copy.finish()
        try db.beginCopy("COPY t FROM STDIN WITH (FORMAT binary)")
        try db.putCopyData(copy.bytes)
        #expect(try db.endCopy() == 7)
        try db.execute("SET TIME ZONE 'UTC'; SET extra_float_digits = 3")
        let rows = try db.execute("""
            SELECT n::text, i::text, d::text, b::text, s, (extract(epoch from at) * 1000)::bigint::text FROM t ORDER BY t.i
            """).rows
        #expect(rows.count == 7)
        for k in 0..<6 {
            let r = rows[k]
            #expect(r[0] == String(ints[k % ints.count]))
            #expect(r[1] == String(k - 3))
            #expect(r[2].flatMap(Double.init)?.bitPattern == doubles[k % doubles.count].bitPattern, "\(String(describing: r[2]))")
            #expect(r[3] == (k % 2 == 0 ? "true" : "false"))
            #expect(r[4] == texts[k])
            #expect(r[5] == String(times[k % times.count]))
        }
        #expect(rows[6].allSatisfy { $0 == nil })
    }

    @Test func wrongCredentialsOrNoDatabaseFailAtStartWithoutThePassword() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let wrong = "postgresql://postgres:not-the-password@127.0.0.1:\(server.port)/postgres"
        #expect {
            _ = try sink(wrong)
        } throws: { e in
            let e = e as! PostgresError
            return e.code == .rejected && !e.description.contains("not-the-password") && e.message.contains("password authentication failed")
        }
        #expect(PostgresURI.redacted(wrong) == "postgresql://postgres:***@127.0.0.1:\(server.port)/postgres")
        #expect(throws: PostgresError.self) { _ = try sink(server.uri("nosuchdb")) }
        #expect(throws: PostgresError.self) { _ = try sink("postgresql://[broken") }
        // A server that is not there is not an error at start: the consumer goes on without it.
        let away = try sink("postgresql://postgres@127.0.0.1:1/postgres")
        #expect(away.sinkStatus?.connected == false)
    }

    @Test func schemaHasCommentsFromTheDocsKPIViewsAndTheExportsColumnKinds() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let storage = MemoryCheckpointStorage()
        let core = try sinkCore(storage, open: [0, 1, 2, 3])
        _ = core.apply(messages(history))
        #expect(core.checkpointAll(sinks: [try sink(server.uri())], stop: nil))
        let db = try PostgresConnection(uri: server.uri())
        // Every column has a comment, and it is docs/marts.md's text.
        let docs = try String(contentsOf: repoRoot.appendingPathComponent("docs/marts.md"), encoding: .utf8)
        let comments = try db.execute("""
            SELECT c.table_name, c.column_name, col_description(('undercurrent.' || c.table_name)::regclass, c.ordinal_position)
            FROM information_schema.columns c WHERE c.table_schema = 'undercurrent' AND c.table_name LIKE 'mart_%'
            """)
        #expect(comments.rows.count == PostgresSchema.tables.reduce(0) { $0 + $1.columns.count })
        for row in comments.rows {
            let text = try #require(row[2], "\(row[0]!).\(row[1]!) has no comment")
            // Grain columns have no row in the docs' tables; every other column's comment is the docs' text.
            let grain = MartSnapshot.grains[row[0]!]?.contains(row[1]!) == true
            #expect(grain || docs.contains(text), "\(row[0]!).\(row[1]!): \(text)")
        }
        // The kind each column was given fits every value the export has for it.
        let snapshot = MartSnapshot(storage.partitions.values.map(\.state))
        for table in snapshot.tables() {
            let t = PostgresSchema.tables.first { $0.name == table.name }!
            #expect(t.columns.map(\.name) == table.columns)
            for row in table.rows {
                for (v, c) in zip(row, t.columns) {
                    switch (v, c.kind) {
                    case (.int, .bigint), (.rate, .double), (.text, .text), (.bool, .boolean), (.time, .timestamptz), (.null, _): break
                    default: Issue.record("\(table.name).\(c.name): \(v) in a \(c.kind) column")
                    }
                }
            }
        }
        // BI users read through the read-only role.
        for t in PostgresSchema.tables.map(\.qualified) + ["undercurrent.kpi_monthly", "undercurrent.kpi_current", "undercurrent.sink_positions"] {
            #expect(try db.query("SELECT has_table_privilege('undercurrent_reader', $1, 'SELECT')", [t]).rows[0][0] == "t", "\(t)")
            #expect(try db.query("SELECT has_table_privilege('undercurrent_reader', $1, 'INSERT')", [t]).rows[0][0] == "f", "\(t)")
        }
        #expect(try db.execute("SELECT version FROM undercurrent.sink_schema_version").rows == [["\(PostgresSchema.version)"]])
        // The KPI view's month is the dashboard's latest complete month.
        let kpis = ExecutiveKPIs(snapshot)
        let month = try #require(kpis.latestMonth)
        let row = try db.query("SELECT revenue_cents, paying_customers, payment_failure_rate, average_payment_attempts, cancel_intent_rate, net_mrr_churn_rate, activation_rate FROM undercurrent.kpi_monthly WHERE month = $1", [month.label]).rows[0]
        #expect(row[0] == String(month.revenueCents))
        #expect(row[1] == String(month.payingCustomers))
        #expect(row[2].flatMap(Double.init) == month.paymentFailureRate)
        #expect(row[3].flatMap(Double.init) == month.averagePaymentAttempts)
        #expect(row[4].flatMap(Double.init) == month.cancelIntentRate)
        #expect(row[5].flatMap(Double.init) == month.netMrrChurnRate)
        #expect(row[6].flatMap(Double.init) == month.activationRate)
        let current = try db.execute("SELECT zombie_accounts, mrr_at_risk_cents FROM undercurrent.kpi_current").rows[0]
        #expect(current[0] == String(kpis.zombieAccounts))
        #expect(current[1] == String(kpis.mrrAtRiskCents))
    }
}

/// Hands a value to another thread where the test knows only one thread uses it at a time.
final class UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
