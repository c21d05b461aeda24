import Foundation
import Testing
import TestSupport

/// A path a command must write and cannot: one line naming the path and the reason in words, exit 2, before any
/// work; never a Foundation error dump.
@Suite struct StartChecksTests {
    @Test func unwritablePathsFailAtOnceNamingThePathAndTheReason() throws {
        let dir = tempDir()
        let missing = dir.appendingPathComponent("missing").path
        let file = dir.appendingPathComponent("a-file").path
        FileManager.default.createFile(atPath: file, contents: Data("x".utf8))
        let cases: [(String, [String], String)] = [
            ("marts-consumer", ["--state-dir", "/dev/null/x", "--bootstrap-servers", "127.0.0.1:1"], "cannot use /dev/null/x as the state directory: /dev/null is not a directory"),
            ("marts-consumer", ["--state-dir", file], "cannot use \(file) as the state directory: it is a file, not a directory"),
            ("marts-consumer", ["--state-dir", dir.appendingPathComponent("s").path, "--metrics-file", missing + "/m.prom", "--from-archive", "/dev/null"],
             "cannot write the metrics file \(missing)/m.prom: its directory \(missing) does not exist"),
            ("undercurrent", ["loadtest", "--report", missing + "/lt", "--duration", "30s"],
             "cannot write the load-test report \(missing)/lt.json: its directory \(missing) does not exist"),
            ("undercurrent", ["simulate", "--out", missing + "/a.ndjson", "--customers", "10"], "cannot write the archive \(missing)/a.ndjson: its directory"),
            ("undercurrent", ["marts", "export", "--state-dir", dir.path, "--out", "/dev/null/out"], "cannot use /dev/null/out as the output directory: /dev/null is not a directory"),
            ("undercurrent", ["report", "--state-dir", dir.path, "--out", dir.path], "cannot write the report \(dir.path): it is a directory"),
            // A state directory to read the marts from that is missing, or that no consumer wrote into (a typo away
            // from the real one): nothing is exported, checked or reported as if the business had no customers.
            ("undercurrent", ["marts", "export", "--state-dir", missing, "--out", dir.appendingPathComponent("e").path], "state directory \(missing) does not exist"),
            ("undercurrent", ["marts", "export", "--state-dir", dir.path, "--out", dir.appendingPathComponent("e").path],
             "state directory \(dir.path) holds no checkpoint: a consumer writes them there (marts-consumer --state-dir \(dir.path))"),
            ("undercurrent", ["check", "--state-dir", dir.path], "state directory \(dir.path) holds no checkpoint"),
            ("undercurrent", ["check", "--state-dir", missing], "state directory \(missing) does not exist"),
            // A command's own check after its flags parsed: one line too (it came with the root command's usage).
            ("undercurrent", ["dashboard", "--state-dir", missing], "--state-dir: \(missing) does not exist"),
            ("undercurrent", ["report", "--state-dir", dir.path, "--out", dir.appendingPathComponent("r.html").path], "state directory \(dir.path) holds no checkpoint"),
            // An archive that is missing, a directory, or not an archive at all: refused before any work, not read to
            // its end with every line rejected.
            ("marts-consumer", ["--state-dir", dir.appendingPathComponent("s2").path, "--from-archive", missing + ".ndjson"], "archive \(missing).ndjson does not exist"),
            ("marts-consumer", ["--state-dir", dir.appendingPathComponent("s3").path, "--from-archive", dir.path], "archive \(dir.path) is a directory, not a file"),
            ("marts-consumer", ["--state-dir", dir.appendingPathComponent("s4").path, "--from-archive", file],
             "\(file) is not an archive of records: its first record is unreadable (archive line 1: expected '{')"),
            ("undercurrent", ["replay", "--from", file], "\(file) is not an archive of records"),
            ("undercurrent", ["replay", "--from", missing + ".ndjson"], "archive \(missing).ndjson does not exist"),
        ]
        for (product, args, expected) in cases {
            let (status, stderr) = try BadFlagsTests.run(product, args)
            let lines = stderr.split(separator: "\n")
            #expect(status == 2, "\(product) \(args.joined(separator: " ")) exited \(status): \(stderr)")
            #expect(lines.count == 1 && lines[0].contains("error: " + expected), "\(product) \(args.joined(separator: " ")): \(stderr)")
            #expect(!stderr.contains("NSCocoaErrorDomain") && !stderr.contains("Code="))
        }
    }

    /// A cluster no broker answers for: `replay` and `smoke` say so in one line, exit 2, before sending anything.
    /// Before, `replay` sent into it and failed two minutes later with librdkafka's termination warning and
    /// `Error: flush: … still in flight`; `smoke` printed ArgumentParser's bare `Error: metadata: …`.
    @Test func aClusterNoBrokerAnswersForIsOneLineBeforeAnything() throws {
        let dir = tempDir()
        let archive = dir.appendingPathComponent("a.ndjson").path
        let (made, log) = try BadFlagsTests.run("undercurrent", ["simulate", "--customers", "5", "--months", "1", "--out", archive])
        #expect(made == 0, "\(log)")
        for args in [["replay", "--from", archive], ["smoke"]] {
            let (status, stderr) = try BadFlagsTests.run("undercurrent", args + ["--bootstrap-servers", "127.0.0.1:1"])
            let lines = stderr.split(separator: "\n")
            #expect(status == 2, "\(args): \(stderr)")
            #expect(lines.count == 1 && lines[0].contains("error: cannot "), "\(args): \(stderr)")
            #expect(stderr.contains("Broker transport failure") || stderr.contains("Timed out"), "\(stderr)")
        }
    }

    /// `report` writes the format its file's name says unless `--format` says otherwise: `--out r.md` wrote HTML.
    @Test func aReportTakesItsFormatFromTheFileNameUnlessTold() throws {
        let dir = tempDir()
        let archive = dir.appendingPathComponent("a.ndjson").path, state = dir.appendingPathComponent("state").path
        for (product, args) in [("undercurrent", ["simulate", "--customers", "30", "--months", "2", "--out", archive]),
                                ("marts-consumer", ["--from-archive", archive, "--state-dir", state, "--no-alerts"])] {
            let (status, stderr) = try BadFlagsTests.run(product, args)
            #expect(status == 0, "\(product) \(args): \(stderr)")
        }
        let cases: [(String, [String], String)] = [
            ("r.md", [], "# Undercurrent report"), ("r.MARKDOWN", [], "# Undercurrent report"), ("r.html", [], "<!doctype html>"),
            ("r.txt", [], "<!doctype html>"), ("s.md", ["--format", "html"], "<!doctype html>"), ("s.html", ["--format", "md"], "# Undercurrent report"),
        ]
        for (name, extra, start) in cases {
            let out = dir.appendingPathComponent(name).path
            let (status, stderr) = try BadFlagsTests.run("undercurrent", ["report", "--state-dir", state, "--out", out] + extra)
            #expect(status == 0, "\(stderr)")
            #expect(try String(contentsOfFile: out, encoding: .utf8).hasPrefix(start), "\(name) \(extra)")
            #expect(stderr.contains("(\(start.hasPrefix("#") ? "md" : "html"), as of"), "\(stderr)")
        }
    }

    /// An address a server cannot listen on (a port another process holds, an address that is not this machine's):
    /// one line naming the flag and the reason, exit 2, before any work. Before, the bind failed when the services
    /// started, after the consumer had begun, with NIO's `bind(descriptor:ptr:bytes:)` message and status 1; the
    /// demo failed so only after its minutes of work.
    @Test func anAddressNothingCanListenOnIsOneLineBeforeAnyWork() throws {
        let dir = tempDir()
        // A port held for the test's length: a dashboard on port 0, its port read from the line it prints.
        let log = dir.appendingPathComponent("holder.stderr")
        let holder = try launch("undercurrent", ["dashboard", "--state-dir", dir.path, "--listen", "127.0.0.1:0"], stderr: log)
        defer { holder.terminate(); holder.waitUntilExit() }
        let port = try #require(boundPort(in: log, prefix: "dashboard: ", process: holder), "the dashboard did not say where it listens")
        let held = "127.0.0.1:\(port)"
        let archive = dir.appendingPathComponent("a.ndjson")
        try Data(#"{"topic":"billing","key":"cus_1","value":"{}"}"#.utf8 + [0x0A]).write(to: archive)
        let inUse = "cannot listen there: the port is in use (another process listens on it)"
        let cases: [(String, [String], String, URL?)] = [
            ("marts-consumer", ["--state-dir", dir.appendingPathComponent("s1").path, "--from-archive", archive.path, "--metrics-listen", held],
             "--metrics-listen \(held): \(inUse)", dir.appendingPathComponent("s1")),
            ("marts-consumer", ["--state-dir", dir.appendingPathComponent("s2").path, "--from-archive", archive.path, "--serve", held],
             "--serve \(held): \(inUse)", dir.appendingPathComponent("s2")),
            // TEST-NET-1 (RFC 5737): never an address of this machine.
            ("marts-consumer", ["--state-dir", dir.appendingPathComponent("s3").path, "--from-archive", archive.path, "--serve", "192.0.2.1:8080"],
             "--serve 192.0.2.1:8080: cannot listen there: the address is not one of this machine's", dir.appendingPathComponent("s3")),
            ("undercurrent", ["dashboard", "--state-dir", dir.path, "--listen", held], "--listen \(held): \(inUse)", nil),
            ("undercurrent", ["dashboard", "--state-dir", dir.path, "--listen", "127.0.0.1:0", "--metrics-listen", held], "--metrics-listen \(held): \(inUse)", nil),
            ("undercurrent", ["demo", "--customers", "20", "--months", "2", "--state-dir", dir.appendingPathComponent("s4").path, "--serve", held],
             "--serve \(held): \(inUse)", dir.appendingPathComponent("s4")),
            ("billing-producer", ["--customers", "20", "--months", "2", "--bootstrap-servers", "127.0.0.1:1", "--metrics-listen", held],
             "--metrics-listen \(held): \(inUse)", nil),
        ]
        try Self.expectRefusedAtStart(cases)
    }

    /// Each command of `cases` (product, arguments, the message expected after "error: ", the state directory it
    /// was given) ends with that one line and exit 2, before any work: no checkpoint was written.
    static func expectRefusedAtStart(_ cases: [(String, [String], String, URL?)]) throws {
        for (product, args, expected, state) in cases {
            let (status, stderr) = try BadFlagsTests.run(product, args)
            let lines = stderr.split(separator: "\n")
            #expect(status == 2, "\(product) \(args.joined(separator: " ")) exited \(status): \(stderr)")
            #expect(lines.count == 1 && lines[0].contains("error: " + expected), "\(product) \(args.joined(separator: " ")): \(stderr)")
            if let state { #expect(!FileManager.default.fileExists(atPath: state.appendingPathComponent("partition-0").path)) }
        }
    }

    /// Two options of one command naming the same port, in different words: one line naming both, exit 2, before
    /// any work. Before, each was found free alone, the consumer began, and the second server failed with NIO's
    /// `bind(descriptor:ptr:bytes:)` message and two HummingbirdCore errors, exit 1.
    @Test func twoServersOfOneCommandOnOnePortIsOneLineBeforeAnyWork() throws {
        let dir = tempDir()
        let archive = dir.appendingPathComponent("a.ndjson")
        try Data(#"{"topic":"billing","key":"cus_1","value":"{}"}"#.utf8 + [0x0A]).write(to: archive)
        let port = PostgresServer.freePort()
        let same = "name the same port: only one server can listen there; give each its own port, or leave out --metrics-listen"
        let cases: [(String, [String], String, URL?)] = [
            ("marts-consumer", ["--state-dir", dir.appendingPathComponent("s1").path, "--from-archive", archive.path,
                                "--serve", "127.0.0.1:\(port)", "--metrics-listen", "localhost:\(port)"],
             "--metrics-listen localhost:\(port) and --serve 127.0.0.1:\(port) \(same)", dir.appendingPathComponent("s1")),
            ("marts-consumer", ["--state-dir", dir.appendingPathComponent("s2").path, "--from-archive", archive.path,
                                "--serve", "0.0.0.0:\(port)", "--metrics-listen", "127.0.0.1:\(port)"],
             "--metrics-listen 127.0.0.1:\(port) and --serve 0.0.0.0:\(port) \(same)", dir.appendingPathComponent("s2")),
            ("undercurrent", ["dashboard", "--state-dir", dir.path, "--listen", "127.0.0.1:\(port)", "--metrics-listen", "127.0.0.1:\(port)"],
             "--metrics-listen 127.0.0.1:\(port) and --listen 127.0.0.1:\(port) \(same)", nil),
        ]
        try Self.expectRefusedAtStart(cases)
    }

    /// `record` with no cluster to record from: one line, exit 2, and no empty archive left behind.
    @Test func recordWithoutAClusterLeavesNoArchive() throws {
        let dir = tempDir()
        let out = dir.appendingPathComponent("history.ndjson")
        let log = dir.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        let p = Process()
        p.executableURL = try binary("undercurrent")
        p.arguments = ["record", "--out", out.path]
        var env = ProcessInfo.processInfo.environment
        env["UNDERCURRENT_BOOTSTRAP_SERVERS"] = nil
        env["UNDERCURRENT_BROKER_FILE"] = dir.appendingPathComponent("no-broker").path
        p.environment = env
        p.standardError = try FileHandle(forWritingTo: log)
        p.standardOutput = FileHandle.nullDevice
        try p.run()
        p.waitUntilExit()
        let stderr = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        #expect(p.terminationStatus == 2, "\(stderr)")
        #expect(stderr.contains("no --bootstrap-servers"))
        #expect(!FileManager.default.fileExists(atPath: out.path))
    }
}
