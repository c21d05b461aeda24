import Archives
import Events
import Foundation
import Kafka
import ArgumentParser
import Testing
import TestSupport
import UndercurrentCLI

/// A wrong flag or config value: a non-zero exit and an error line that names the flag or key and the
/// expected form (ArgumentParser adds its usage reminder below it).
@Suite struct BadFlagsTests {
    static func run(_ product: String, _ args: [String]) throws -> (Int32, String) {
        let log = tempDir().appendingPathComponent("stderr")
        let p = try launch(product, args, stderr: log)
        p.waitUntilExit()
        return (p.terminationStatus, (try? String(contentsOf: log, encoding: .utf8)) ?? "")
    }

    static func badConfigDir(_ file: String, _ from: String, _ to: String) throws -> String {
        let dir = tempDir()
        try FileManager.default.removeItem(at: dir)
        try FileManager.default.copyItem(at: repoConfig, to: dir)
        let url = dir.appendingPathComponent(file)
        let text = try String(contentsOf: url, encoding: .utf8)
        #expect(text.contains(from))
        try text.replacingOccurrences(of: from, with: to).write(to: url, atomically: true, encoding: .utf8)
        return dir.path
    }

    @Test func wrongValuesAreNamedWithTheirExpectedForm() throws {
        let state = tempDir().path
        let cases: [(String, [String], String)] = [
            ("undercurrent", ["simulate", "--out", "/dev/null", "--customers", "0"], "--customers: expected"),
            ("undercurrent", ["simulate", "--out", "/dev/null", "--start", "yesterday"], "--start: expected a date"),
            ("undercurrent", ["simulate", "--out", "/dev/null", "--shard", "3/2"], "--shard: expected i/n"),
            ("undercurrent", ["simulate", "--out", "/dev/null", "--months", "2", "--until", "2024-01-15"], "--months and --until: give one of them"),
            ("undercurrent", ["loadtest", "--rate=-5"], "--rate: expected a positive number"),
            ("undercurrent", ["loadtest", "--ramp", "5000:200000"], "--ramp: expected FROM:TO:DURATION"),
            ("undercurrent", ["loadtest", "--slo", "p98<5ms"], "--slo: expected METRIC"),
            ("undercurrent", ["loadtest", "--duration", "soon"], "--duration: expected a duration"),
            // A rate that would need more customers than a simulation takes: refused (it took all memory and was killed).
            ("undercurrent", ["loadtest", "--rate", "1e12", "--duration", "1s", "--report", tempDir().appendingPathComponent("lt").path],
             "simulated customers, more than the 50000000 a simulation takes: lower the rate or the duration, or give --customers"),
            ("undercurrent", ["evaluate-alerts", "--seeds", "42,x"], "--seeds: expected 1 to 64 seeds"),
            ("undercurrent", ["evaluate-alerts", "--within", "0"], "--within: expected minutes above 0"),
            ("undercurrent", ["evaluate-alerts", "--within", "nan"], "--within: expected minutes above 0"),
            ("undercurrent", ["replay", "--from", "x.ndjson", "--speed", "fast"], "--speed: expected 'max' or a positive number"),
            ("undercurrent", ["replay", "--from", "x.ndjson", "--topic-map", "billing"], "--topic-map: expected old=new"),
            // Topic names Kafka refuses: named before anything is sent (the embedded broker took a map's pairs, joined
            // by commas, as one topic name, and the topics not mapped went to the live ones).
            ("undercurrent", ["replay", "--from", "x.ndjson", "--topic-map", "billing=r billing"], "--topic-map: 'r billing' is not a topic name: ' ' is not allowed"),
            ("undercurrent", ["replay", "--from", "x.ndjson", "--topic-map", "billing=a,billing=b"], "--topic-map: billing is mapped twice, to a and to b"),
            ("undercurrent", ["replay", "--from", "x.ndjson", "--topic-map", "billing=a,"], "--topic-map: expected old=new (pairs separated by commas), got ''"),
            ("undercurrent", ["replay", "--from", "x.ndjson", "--keep-unmapped-topics"], "--keep-unmapped-topics: only with --topic-map"),
            ("undercurrent", ["record", "--out", "x", "--topics", "billing,pay/ments"], "--topics: 'pay/ments' is not a topic name: '/' is not allowed"),
            ("undercurrent", ["loadtest", "--topic-prefix", ""], "--topic-prefix: cannot be empty (the load test would write into the live topics)"),
            ("undercurrent", ["loadtest", "--topic-prefix", "load test."], "--topic-prefix: 'load test.billing' is not a topic name"),
            ("billing-producer", ["--topic", "..", "--bootstrap-servers", "127.0.0.1:1"], "--topic: '..' cannot be a topic name"),
            ("marts-consumer", ["--state-dir", state, "--dlq-topic", "billing"], "--dlq-topic: billing is an input topic of the consumer"),
            ("marts-consumer", ["--state-dir", state, "--topic-prefix", "r.", "--alerts-topic", "r.payments"], "--alerts-topic: r.payments is an input topic of the consumer"),
            ("marts-consumer", ["--state-dir", state, "--topic-prefix", "r,"], "--topic-prefix: 'r,billing' is not a topic name: ',' separates names"),
            ("marts-consumer", ["--state-dir", state, "--alerts-topic", String(repeating: "a", count: 250)], "--alerts-topic: a topic name has at most 249 characters, this one 250"),
            ("undercurrent", ["record", "--out", "x", "--from-time", "noon"], "--from-time: expected a time"),
            // An end given as a bare date: its midnight would leave out the whole day named; refused as `--until` is.
            ("undercurrent", ["record", "--out", "x", "--until-time", "2024-01-31"], "--until-time: expected a time like 2025-06-30T23:59:59Z"),
            ("undercurrent", ["replay", "--from", "x.ndjson", "--until-time", "2024-01-31"], "--until-time: expected a time like 2025-06-30T23:59:59Z"),
            // A time range that ends before it starts: nothing in it (a run over it did nothing and exited 0).
            ("marts-consumer", ["--state-dir", state, "--from-time", "2024-06-01", "--until", "2024-01-01T00:00:00Z"],
             "--until 2024-01-01T00:00:00.000Z is before --from-time 2024-06-01T00:00:00.000Z: no event is in that range"),
            ("undercurrent", ["record", "--out", "x", "--from-time", "2024-06-01", "--until-time", "2024-05-31T23:59:59.999Z"],
             "--until-time 2024-05-31T23:59:59.999Z is before --from-time 2024-06-01T00:00:00.000Z"),
            ("undercurrent", ["replay", "--from", "x.ndjson", "--from-time", "2024-06-01T12:00:00+02:00", "--until-time", "2024-06-01T09:59:59Z"],
             "--until-time 2024-06-01T09:59:59.000Z is before --from-time 2024-06-01T10:00:00.000Z"),
            ("undercurrent", ["dashboard", "--state-dir", state, "--listen", "anywhere"], "--listen: expected HOST:PORT"),
            ("undercurrent", ["dashboard", "--state-dir", state, "--token", "short"], "--token: expected at least 16 characters"),
            ("undercurrent", ["report", "--state-dir", state, "--format", "pdf"], "--format: expected html or md"),
            ("marts-consumer", ["--state-dir", state, "--checkpoint-ms", "0"], "--checkpoint-ms: expected a positive number"),
            ("marts-consumer", ["--state-dir", state, "-X", "nonsense"], "-X expects key=value"),
            // Properties librdkafka refuses, named before any work (they failed with status 1 when the client started).
            ("marts-consumer", ["--state-dir", state, "-X", "foo.bar=1", "--bootstrap-servers", "127.0.0.1:1"],
             "Kafka property 'foo.bar': No such configuration property"),
            ("marts-consumer", ["--state-dir", state, "-X", "fetch.wait.max.ms=abc", "--bootstrap-servers", "127.0.0.1:1"],
             "Kafka property 'fetch.wait.max.ms': Invalid value"),
            ("billing-producer", ["-X", "linger.ms=-5", "--bootstrap-servers", "127.0.0.1:1"], "Kafka property 'linger.ms'"),
            ("marts-consumer", ["--state-dir", state, "--threads", "0"], "--threads: expected a number from 1 to 64"),
            // Archive options without an archive: refused, not quietly ignored.
            ("marts-consumer", ["--state-dir", state, "--partitions", "12"], "--partitions: only with --from-archive"),
            ("marts-consumer", ["--state-dir", state, "--allow-truncated"], "--allow-truncated: only with --from-archive"),
            ("marts-consumer", ["--state-dir", state, "--hot-customers", "0"], "--hot-customers: expected a number from 1"),
            ("marts-consumer", ["--state-dir", state, "--postgres-timeout", "30"], "--postgres-timeout: only with --postgres"),
            ("marts-consumer", ["--state-dir", state, "--postgres", "postgresql://u@127.0.0.1:1/db", "--postgres-timeout", "0"],
             "--postgres-timeout: expected 1 to 86400 seconds"),
            ("marts-consumer", ["--state-dir", state, "--postgres", "postgresql://u@127.0.0.1:1/db", "--postgres-timeout", "nan"],
             "--postgres-timeout: expected 1 to 86400 seconds"),
            ("marts-consumer", ["--state-dir", state, "--from-time", "later"], "--from-time: expected a time"),
            ("payments-producer", ["--rate", "0"], "--rate: expected a positive number"),
            ("billing-producer", ["--speed", "10"], "--speed: only with --realtime"),
            ("marts-consumer", ["--state-dir", state, "--log-format", "yaml"], "--log-format: expected text or json"),
            ("undercurrent", ["simulate", "--out", "/dev/null", "--config-dir", try Self.badConfigDir("baseline.yaml", "failureRate:", "failureRat:")],
             "failureRat"),
            ("undercurrent", ["simulate", "--out", "/dev/null", "--scenario", "no-such-scenario", "--config-dir", repoConfig.path], "no-such-scenario"),
            ("marts-consumer", ["--state-dir", state, "--from-archive", "/dev/null", "--config-dir",
                                try Self.badConfigDir("alerts.yaml", "falseAlertsPerMonth:", "falseAlertsPerMonth: -3 #")], "falseAlertsPerMonth"),
        ]
        for (product, args, expected) in cases {
            let (status, stderr) = try Self.run(product, args)
            let first = stderr.split(separator: "\n").first { $0.contains("rror") }.map(String.init) ?? ""
            #expect(status == 2, "\(product) \(args.joined(separator: " ")) exited \(status), not 2 (could not start)")
            #expect(first.contains(expected), "\(product) \(args.joined(separator: " ")): \(stderr)")
        }
    }

    /// Every executable's --help ends with what its exit statuses mean.
    @Test func helpListsTheExitStatuses() throws {
        for product in ["undercurrent", "billing-producer", "payments-producer", "engagement-producer", "marts-consumer"] {
            let p = Process()
            p.executableURL = try binary(product)
            p.arguments = ["--help"]
            let out = Pipe()
            p.standardOutput = out
            p.standardError = FileHandle.nullDevice
            try p.run()
            let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
            for status in ["Exit status: 0 done", "1 failed after a good start", "2 could not start", "3 finished", "130 interrupted"] {
                #expect(text.replacingOccurrences(of: "\n", with: " ").replacingOccurrences(of: "  ", with: " ").contains(status), "\(product) --help: \(status)")
            }
        }
    }

    /// `--log-format json`: every line standard error gets is one JSON object with the fields log shippers expect,
    /// the command's own lines (its summary, progress, errors) too: before, they stayed text among the JSON.
    @Test func jsonLogsAreOneObjectPerLine() throws {
        let dir = tempDir()
        let archive = try writeArchive(Array(history.prefix(2000)), in: dir)
        let state = dir.appendingPathComponent("state").path
        _ = try Self.run("marts-consumer", ["--state-dir", state, "--from-archive", archive, "--no-alerts", "--checkpoint-events", "100"])
        // The second run resumes: it logs at info with metadata.
        let (status, stderr) = try Self.run("marts-consumer", ["--state-dir", state, "--from-archive", archive, "--no-alerts",
                                                                 "--log-format", "json", "--log-level", "info"])
        #expect(status == 0)
        let lines = try Self.jsonLines(stderr, logger: "marts-consumer")
        #expect(lines.contains { ($0["metadata"] as? [String: Any])?["kafka.partitions"] != nil && ($0["message"] as? String)?.contains("resumed from checkpoints") == true })
        #expect(lines.contains { $0["source"] as? String == "console" && ($0["message"] as? String)?.contains("accepted ") == true }, "the summary")
        // A command that logs nothing, and one that fails: their lines too.
        let (made, simulated) = try Self.run("undercurrent", ["simulate", "--customers", "10", "--months", "1", "--out", dir.appendingPathComponent("s.ndjson").path,
                                                              "--log-format", "json"])
        let simulateLines = try Self.jsonLines(simulated, logger: "undercurrent")
        #expect(made == 0 && simulateLines.contains { ($0["message"] as? String)?.hasPrefix("wrote ") == true }, "\(simulated)")
        let (failed, error) = try Self.run("undercurrent", ["report", "--state-dir", dir.appendingPathComponent("missing").path, "--log-format", "json"])
        let errorLines = try Self.jsonLines(error, logger: "undercurrent")
        #expect(failed == 2 && errorLines.count == 1 && errorLines[0]["level"] as? String == "error"
                && (errorLines[0]["message"] as? String)?.contains("error: state directory") == true, "\(error)")
    }

    /// A second signal ends a process at once with 130, and under `--log-format json` says so in a JSON entry (it was
    /// a text line among them). The process is a producer whose cluster is away, waiting up to two minutes for its
    /// events in flight (`ProducerFlushTests`): the two signals reach it while it waits, whatever the machine's speed.
    @Test(.timeLimit(.minutes(2))) func aSecondSignalIsAJSONEntryUnderJSONLogs() throws {
        let log = tempDir().appendingPathComponent("stderr")
        let p = try launch("billing-producer", ["--customers", "10", "--months", "1", "--bootstrap-servers", "127.0.0.1:1",
                                                "--log-format", "json"], stderr: log)
        defer { if p.isRunning { p.terminate() } }
        func text() -> String { (try? String(contentsOf: log, encoding: .utf8)) ?? "" }
        while p.isRunning && !text().contains("in flight to be delivered") { usleep(10_000) }
        #expect(p.isRunning, "it ended before saying it waits: \(text())")
        kill(p.processIdentifier, SIGTERM)
        kill(p.processIdentifier, SIGINT)
        p.waitUntilExit()
        let stderr = text()
        #expect(p.terminationReason == .exit && p.terminationStatus == 130, "\(stderr)")
        let lines = try Self.jsonLines(stderr, logger: "billing-producer")
        #expect(lines.contains { $0["message"] as? String == "second signal: exiting now" && $0["level"] as? String == "warning" }, "\(stderr)")
    }

    /// Each line of `stderr` as a JSON object with a level, a message, a UTC time and `logger` as the logger.
    static func jsonLines(_ stderr: String, logger: String) throws -> [[String: Any]] {
        let lines = stderr.split(separator: "\n")
        #expect(!lines.isEmpty, "\(stderr)")
        return try lines.map { line in
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "not JSON: \(line)")
            #expect(object["level"] is String && object["message"] is String && object["logger"] as? String == logger, "\(line)")
            #expect((object["time"] as? String)?.hasSuffix("Z") == true, "\(line)")
            return object
        }
    }
}

/// Where a command's Kafka settings come from: flags, a properties file, the environment.
@Suite struct KafkaSettingsTests {
    @Test func propertiesFileThenFlagsThenTheEnvironmentInThatOrderOfStrength() throws {
        let dir = tempDir()
        let file = dir.appendingPathComponent("client.properties")
        try Data("""
            # a secured cluster
            security.protocol = SASL_SSL
            sasl.mechanism=PLAIN
            sasl.username=svc
            sasl.password=s3cr=t

            """.utf8).write(to: file)
        let fromFile = try KafkaOptions.parse(["--kafka-config", file.path]).kafkaConfig(environment: ["UNDERCURRENT_BOOTSTRAP_SERVERS": "env:9092"])
        #expect(fromFile["sasl.password"] == "s3cr=t")
        #expect(fromFile["security.protocol"] == "SASL_SSL")
        #expect(fromFile["bootstrap.servers"] == "env:9092")
        #expect(!"\(fromFile.redacted)".contains("s3cr=t"), "secrets stay out of logs")
        // The one line the consumer logs: key=value, sorted, the secret masked.
        #expect(fromFile.redactedDescription.contains("sasl.password=*** sasl.username=svc security.protocol=SASL_SSL"))
        #expect(!fromFile.redactedDescription.contains("s3cr=t"))
        let overridden = try KafkaOptions.parse(["--kafka-config", file.path, "-X", "sasl.mechanism=SCRAM-SHA-512", "--bootstrap-servers", "flag:9092"])
            .kafkaConfig(environment: ["UNDERCURRENT_BOOTSTRAP_SERVERS": "env:9092"])
        #expect(overridden["sasl.mechanism"] == "SCRAM-SHA-512")
        #expect(overridden["bootstrap.servers"] == "flag:9092")
    }

    @Test func unusablePropertiesFileIsOneLineBeforeAnyWork() throws {
        let dir = tempDir()
        let bad = dir.appendingPathComponent("bad.properties")
        try Data("bootstrap.servers=x:9092\nthis line has no equals sign\n".utf8).write(to: bad)
        #expect(throws: (any Error).self) { _ = try KafkaOptions.parse(["--kafka-config", bad.path]) }
        do { _ = try KafkaOptions.parse(["--kafka-config", bad.path]) } catch {
            #expect(KafkaOptions.message(for: error).contains("line 2: expected key=value"))
        }
        do { _ = try KafkaOptions.parse(["--kafka-config", dir.appendingPathComponent("missing").path]) } catch {
            #expect(KafkaOptions.message(for: error).contains("cannot read it"))
        }
    }
}
