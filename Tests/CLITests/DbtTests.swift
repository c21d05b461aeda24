import Foundation
import Postgres
import Testing
import TestSupport

/// The dbt project in integrations/dbt, run by dbt-postgres (from the virtual environment scripts/test.sh
/// makes) against a private PostgreSQL the consumer filled.
@Suite(.serialized) struct DbtTests {
    static let dbt = repoRoot.appendingPathComponent(".build/venv/bin/dbt")

    func runDbt(_ server: PostgresServer, _ args: [String], log: URL) throws -> Int32 {
        let p = Process()
        p.executableURL = Self.dbt
        let project = repoRoot.appendingPathComponent("integrations/dbt").path
        p.arguments = args + ["--project-dir", project, "--profiles-dir", project]
        var env = ProcessInfo.processInfo.environment
        env["PGHOST"] = "127.0.0.1"
        env["PGPORT"] = String(server.port)
        env["PGUSER"] = "postgres"
        env["PGPASSWORD"] = PostgresServer.password
        env["PGDATABASE"] = "postgres"
        env["DBT_LOG_PATH"] = log.deletingLastPathComponent().appendingPathComponent("dbt-logs").path
        env["DBT_TARGET_PATH"] = log.deletingLastPathComponent().appendingPathComponent("dbt-target").path
        env["DBT_SEND_ANONYMOUS_USAGE_STATS"] = "false"
        p.environment = env
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let h = try FileHandle(forWritingTo: log)
        p.standardOutput = h
        p.standardError = h
        try p.run()
        p.waitUntilExit()
        try h.close()
        return p.terminationStatus
    }

    @Test func dbtBuildPassesOnTheSinksTablesAndItsTestsCatchABadValue() throws {
        guard FileManager.default.isExecutableFile(atPath: Self.dbt.path) else {
            throw TestSetupError("dbt is not installed at \(Self.dbt.path) (scripts/test.sh makes that virtual environment)")
        }
        let server = try PostgresServer()
        defer { server.stop() }
        let dir = tempDir()
        let archive = dir.appendingPathComponent("history.ndjson").path
        _ = try writeArchive(try smallWorld(), to: archive)
        let consumer = try launch("marts-consumer", ["--from-archive", archive, "--partitions", "4", "--state-dir", dir.appendingPathComponent("state").path,
                                                     "--postgres", server.uri(), "--log-level", "error"])
        consumer.waitUntilExit()
        #expect(consumer.terminationStatus == 0)

        let log = dir.appendingPathComponent("dbt.log")
        let status = try runDbt(server, ["build"], log: log)
        let text = try String(contentsOf: log, encoding: .utf8)
        #expect(status == 0, "dbt build failed:\n\(text.suffix(3000))")
        #expect(text.contains("Completed successfully"))
        // The model on top agrees with the mart it is built on.
        let db = try PostgresConnection(uri: server.uri())
        let model = try db.execute("SELECT sum(mrr_cents)::text, sum(customers)::text FROM analytics.mrr_at_risk_by_plan").rows[0]
        let mart = try db.execute("SELECT sum(mrr_cents)::text, count(*)::text FROM undercurrent.mart_customer_360 WHERE status IN ('active', 'past_due')").rows[0]
        #expect(model == mart)
        #expect(mart[1].flatMap(Int.init) ?? 0 > 0)

        // The whole history was applied: its test passes. A partial one (retention deleted a partition's first
        // messages) is a warning, not a failure.
        #expect(text.contains("PASS source_history_is_complete_undercurrent_history_starts_"), "\(text.suffix(3000))")
        try db.execute("UPDATE undercurrent.history_starts SET first_offset = 40, missed_messages = 40, gap = 'deleted' WHERE partition = 0 AND topic = 'billing'")
        let warnLog = dir.appendingPathComponent("dbt-partial.log")
        #expect(try runDbt(server, ["test", "--select", "source:undercurrent.history_starts"], log: warnLog) == 0)
        let warned = try String(contentsOf: warnLog, encoding: .utf8)
        #expect(warned.contains("WARN 1 source_history_is_complete_undercurrent_history_starts_"), "\(warned.suffix(3000))")

        // A value outside the documented ones makes `dbt test` fail.
        try db.execute("UPDATE undercurrent.mart_customer_360 SET risk_segment = 'unknown' WHERE customer_id = (SELECT min(customer_id) FROM undercurrent.mart_customer_360)")
        let failing = try runDbt(server, ["test", "--select", "source:undercurrent.mart_customer_360"], log: dir.appendingPathComponent("dbt-bad.log"))
        #expect(failing != 0)
        #expect(try String(contentsOf: dir.appendingPathComponent("dbt-bad.log"), encoding: .utf8).contains("FAIL 1 source_accepted_values_undercurrent_mart_customer_360_risk_segment"))
    }
}
