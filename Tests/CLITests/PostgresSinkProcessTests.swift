import Checkpoints
import Foundation
import Postgres
import Simulation
import Testing
import TestSupport
import UndercurrentCLI

/// `marts-consumer --postgres` as a process, against a private PostgreSQL cluster.
@Suite(.serialized) struct PostgresSinkProcessTests {
    @Test func killedWithSIGKILLAndServerRestartedTheTablesConvergeToTheExport() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let binary = try consumerBinary()
        let dir = tempDir()
        let archive = dir.appendingPathComponent("history.ndjson").path
        let total = try writeArchive(try smallWorld(), to: archive)
        let state = dir.appendingPathComponent("state")
        let args = ["--from-archive", archive, "--partitions", "4", "--state-dir", state.path, "--checkpoint-events", "100",
                    "--postgres", server.uri(withPassword: false), "--log-level", "error"]
        setenv("PGPASSWORD", PostgresServer.password, 1)  // as a user would: never on the command line
        defer { unsetenv("PGPASSWORD") }
        // Killed at random moments after checkpoints (the database write follows each one), then the server
        // itself crashes (an immediate shutdown) and the consumer is killed again while it is away.
        var rng = Xoshiro(seed: 5)
        let first = try killOnProgress(binary, args, state: state, rng: &rng, maxRounds: 4)
        try server.restartImmediately()
        let rest = try killOnProgress(binary, args, state: state, rng: &rng)
        #expect(rest.status == 0)
        #expect(first.kills + rest.kills >= 4, "only \(first.kills + rest.kills) runs were killed before one finished")
        let (snapshot, _) = try StateDirectory(state.path).load()
        #expect(snapshot.accepted == total)
        let db = try PostgresConnection(uri: server.uri())
        for table in snapshot.tables() {
            #expect(try fromDatabase(db, table.name) == exported(table), "\(table.name)")
        }
        #expect(try db.execute("SELECT rows_current FROM undercurrent.sink_status").rows[0][0] == "t")
    }

    @Test func wrongCredentialsEndTheConsumerAtStartWithOneLineWithoutThePassword() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let dir = tempDir()
        let archive = dir.appendingPathComponent("history.ndjson").path
        _ = try writeArchive(try smallWorld(), to: archive)
        let uri = "postgresql://postgres:hunter2@127.0.0.1:\(server.port)/postgres"
        let err = dir.appendingPathComponent("stderr")
        let p = try launch("marts-consumer", ["--from-archive", archive, "--state-dir", dir.appendingPathComponent("s").path, "--postgres", uri], stderr: err)
        p.waitUntilExit()
        let text = try String(contentsOf: err, encoding: .utf8)
        #expect(p.terminationStatus == 2)
        #expect(!text.contains("hunter2"))
        #expect(text.contains("postgresql://postgres:***@127.0.0.1"))
        #expect(text.contains("password authentication failed"))
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("s").path), "no work before the error")
        // A URI libpq cannot parse is a bad flag.
        let bad = try launch("marts-consumer", ["--from-archive", archive, "--state-dir", dir.appendingPathComponent("s").path, "--postgres", "postgresql://[x"], stderr: err)
        bad.waitUntilExit()
        #expect(bad.terminationStatus == 2)
    }

    /// A replay that ends while the server is away: the marts and checkpoints are whole, but the tables are not,
    /// so the run says so and fails (it exited 0 with nothing in the database). The same command run again once
    /// the server is up catches the tables up without a new event.
    @Test func aRunThatEndsWithTheTablesBehindFailsSayingSoAndTheNextRunCatchesUp() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        try server.stopServer()
        let dir = tempDir()
        let archive = dir.appendingPathComponent("history.ndjson").path
        let total = try writeArchive(try smallWorld(), to: archive)
        let state = dir.appendingPathComponent("state")
        let args = ["--from-archive", archive, "--partitions", "4", "--state-dir", state.path, "--checkpoint-events", "100",
                    "--postgres", server.uri(), "--log-level", "critical"]
        let err = dir.appendingPathComponent("stderr")
        let away = try launch("marts-consumer", args, stderr: err)
        away.waitUntilExit()
        let text = try String(contentsOf: err, encoding: .utf8)
        #expect(away.terminationStatus == 1, "\(text)")
        #expect(text.contains("error: the postgres tables are ") && text.contains(" checkpoints behind the state (its server was unreachable)"), "\(text)")
        #expect(!text.contains(PostgresServer.password))
        let (snapshot, _) = try StateDirectory(state.path).load()
        #expect(snapshot.accepted == total, "the marts themselves are whole")

        try server.start()
        let again = try launch("marts-consumer", args, stderr: err)
        again.waitUntilExit()
        let second = try String(contentsOf: err, encoding: .utf8)
        #expect(again.terminationStatus == 0, "\(second)")
        #expect(!second.contains("behind"), "\(second)")
        let db = try PostgresConnection(uri: server.uri())
        for table in snapshot.tables() {
            #expect(try fromDatabase(db, table.name) == exported(table), "\(table.name)")
        }
    }
}

/// Two `marts-consumer` processes in one consumer group, sharing a state directory and a database.
@Suite(.serialized) struct PostgresSinkGroupTests {
    @Test func twoConsumersInOneGroupWriteTheTablesOfOne() throws {
        let server = try PostgresServer()
        defer { server.stop() }
        let p = try smallWorld()
        let broker = try EmbeddedBrokerRunner(partitions: 4, addressFile: nil).start(logger: quiet)
        let dir = tempDir()
        let state = dir.appendingPathComponent("state")
        let logs = [dir.appendingPathComponent("c1.log"), dir.appendingPathComponent("c2.log")]
        let children = try logs.map { log in
            try launch("marts-consumer", ["--bootstrap-servers", broker.bootstrapServers, "--group", "sink-group", "--state-dir", state.path,
                                          "--postgres", server.uri(), "--checkpoint-events", "200", "--checkpoint-ms", "500", "--no-alerts",
                                          "--log-level", "info"], stderr: log)
        }
        defer { for c in children where c.isRunning { kill(c.processIdentifier, SIGKILL) } }
        // Both have joined the group and been given partitions (seen in their logs) before any event is produced.
        func assignedIn(_ log: URL) -> Bool { ((try? String(contentsOf: log, encoding: .utf8)) ?? "").contains("assigned") }
        let joinDeadline = ContinuousClock.now + .seconds(120)
        while !logs.allSatisfy(assignedIn) && ContinuousClock.now < joinDeadline && children.allSatisfy(\.isRunning) { usleep(100_000) }
        #expect(logs.allSatisfy(assignedIn), "both consumers should have been assigned partitions")
        let delivered = try produce(p, to: broker)
        // Wait for what the database shows: every event accepted and every partition's rows at the marts' as-of.
        let db = try PostgresConnection(uri: server.uri())
        func caughtUp() -> Bool {
            guard let row = try? db.execute("SELECT accepted::text, rows_current::text, partitions::text FROM undercurrent.sink_status").rows.first else { return false }
            return row[0] == String(delivered) && row[1] == "true" && row[2] == "4"
        }
        let deadline = ContinuousClock.now + .seconds(180)
        while !caughtUp() && ContinuousClock.now < deadline && children.allSatisfy(\.isRunning) { usleep(200_000) }
        #expect(caughtUp(), "the database should show all \(delivered) events")
        for c in children { kill(c.processIdentifier, SIGTERM) }
        for c in children { c.waitUntilExit() }
        #expect(children.allSatisfy { $0.terminationStatus == 0 })
        let (snapshot, _) = try StateDirectory(state.path).load()
        #expect(snapshot.accepted == delivered)
        for table in snapshot.tables() {
            #expect(try fromDatabase(db, table.name) == exported(table), "\(table.name)")
        }
        // Both wrote: each process's partitions are in the positions table.
        let writers = logs.map { (try? String(contentsOf: $0, encoding: .utf8)) ?? "" }
        #expect(writers.allSatisfy { !$0.contains("postgres: write failed") })
    }
}
