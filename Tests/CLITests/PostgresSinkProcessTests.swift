import Checkpoints
import Foundation
import Postgres
import Simulation
import Testing
import TestSupport

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
        #expect(bad.terminationStatus == 64)
    }
}
