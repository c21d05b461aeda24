import Foundation
import Kafka
import Testing
import TestSupport

/// An archive read from a stream: standard input (`-`), a pipe (`<(gzip -dc a.gz)` is `/dev/fd/63`), a FIFO.
/// Before, the start check read the stream's first block to see that it was an archive, and the run read on from
/// where the check had stopped: `marts-consumer --from-archive <(cat a.ndjson)` of a small history applied 0 events
/// and exited 0 (of a large one, it lost the first block); `-` was "archive - does not exist".
@Suite struct ArchiveStreamTests {
    /// A simulated archive and its line count.
    static func archive(in dir: URL, gzip: Bool = false) throws -> (path: String, lines: Int) {
        let path = dir.appendingPathComponent(gzip ? "a.ndjson.gz" : "a.ndjson").path
        let (status, stderr) = try BadFlagsTests.run("undercurrent", ["simulate", "--customers", "40", "--months", "3", "--scenario", "payment-incident", "--out", path])
        #expect(status == 0, "\(stderr)")
        let said = try #require(stderr.firstMatch(of: /wrote (\d+) events/), "\(stderr)")
        return (path, Int(said.1)!)
    }

    /// Runs an executable of the package, with `input` (if any) written into its standard input through a pipe on a
    /// thread of its own, so that a child reading slowly never blocks the test; returns its status and standard
    /// error. A child still running after 300 s is killed (status 9): only a regression makes one wait for ever (a
    /// stream reopened after its writer has gone).
    static func run(_ product: String, _ args: [String], stdin input: Data? = nil) throws -> (Int32, String) {
        let log = tempDir().appendingPathComponent("stderr")
        try Data().write(to: log)
        let p = Process(), pipe = Pipe()
        p.executableURL = try binary(product)
        p.arguments = args
        p.standardInput = input == nil ? FileHandle.nullDevice : pipe
        p.standardOutput = FileHandle.nullDevice
        p.standardError = try FileHandle(forWritingTo: log)
        try p.run()
        if let input {
            signal(SIGPIPE, SIG_IGN)  // a child that stops reading gives the writer EPIPE, not the test process a SIGPIPE
            Thread {
                try? pipe.fileHandleForWriting.write(contentsOf: input)  // (a child that stops reading early: EPIPE)
                try? pipe.fileHandleForWriting.close()
            }.start()
        }
        let watchdog = ContinuousClock.now + .seconds(300)
        while p.isRunning && ContinuousClock.now < watchdog { Thread.sleep(forTimeInterval: 0.05) }
        if p.isRunning { kill(p.processIdentifier, SIGKILL) }
        p.waitUntilExit()
        return (p.terminationStatus, try String(contentsOf: log, encoding: .utf8))
    }

    static func marts(_ state: URL) throws -> [String: String] {
        let out = tempDir()
        let (status, stderr) = try BadFlagsTests.run("undercurrent", ["marts", "export", "--state-dir", state.path, "--out", out.path])
        #expect(status == 0, "\(stderr)")
        var files: [String: String] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: out.path) where name.hasSuffix(".csv") {
            files[name] = try String(contentsOf: out.appendingPathComponent(name), encoding: .utf8)
        }
        return files
    }

    @Test func theConsumerReadsAnArchiveFromStandardInputOrAFIFOWhole() throws {
        let dir = tempDir()
        let (plain, lines) = try Self.archive(in: dir)
        let (gzip, gzLines) = try Self.archive(in: dir, gzip: true)
        #expect(gzLines == lines)
        // The reference: the same archive read from its file.
        let reference = dir.appendingPathComponent("from-file")
        let (status, stderr) = try BadFlagsTests.run("marts-consumer", ["--from-archive", plain, "--state-dir", reference.path, "--no-alerts"])
        #expect(status == 0 && stderr.contains("accepted \(lines),"), "\(stderr)")
        let expected = try Self.marts(reference)
        #expect(expected.count == 10 && expected.values.contains { $0.split(separator: "\n").count > 5 })

        for (name, file) in [("plain", plain), ("gzip", gzip)] {
            let state = dir.appendingPathComponent("stdin-" + name)
            let (status, stderr) = try Self.run("marts-consumer", ["--from-archive", "-", "--state-dir", state.path, "--no-alerts"],
                                                stdin: try Data(contentsOf: URL(fileURLWithPath: file)))
            #expect(status == 0 && stderr.contains("accepted \(lines),"), "\(name): \(stderr)")
            #expect(try Self.marts(state) == expected, "\(name)")
        }

        // A FIFO, its writer another process: opened once, read from its start.
        let fifo = dir.appendingPathComponent("history.fifo").path
        try #require(mkfifo(fifo, 0o644) == 0)
        let writer = Process()
        writer.executableURL = URL(fileURLWithPath: "/bin/sh")
        writer.arguments = ["-c", "cat \"$0\" > \"$1\"", plain, fifo]
        try writer.run()
        let state = dir.appendingPathComponent("fifo")
        let (fifoStatus, fifoLog) = try Self.run("marts-consumer", ["--from-archive", fifo, "--state-dir", state.path, "--no-alerts"])
        // (A consumer that failed may have left the writer waiting for a reader.)
        if fifoStatus != 0 && writer.isRunning { kill(writer.processIdentifier, SIGKILL) }
        writer.waitUntilExit()
        #expect(fifoStatus == 0 && fifoLog.contains("accepted \(lines),"), "\(fifoLog)")
        #expect(writer.terminationStatus == 0, "the FIFO's writer was cut off")
        #expect(try Self.marts(state) == expected)
    }

    /// A stream that is not an archive: refused at its first record, as a file is before the run (exit 1 here: the
    /// run had begun), nothing applied.
    @Test func aStreamThatIsNotAnArchiveStopsAtItsFirstRecord() throws {
        let dir = tempDir()
        let (plain, _) = try Self.archive(in: dir)
        let input = Data("customer_id,plan\n".utf8) + (try Data(contentsOf: URL(fileURLWithPath: plain)))
        let state = dir.appendingPathComponent("state")
        let (status, stderr) = try Self.run("marts-consumer", ["--from-archive", "-", "--state-dir", state.path, "--no-alerts"], stdin: input)
        #expect(status == 1, "\(stderr)")
        #expect(stderr.contains("error: - is not an archive of records: its first record is unreadable (archive line 1: expected '{')"), "\(stderr)")
        #expect(!stderr.contains("accepted"), "\(stderr)")

        let broker = try EmbeddedBroker(brokers: 1, logger: quiet)
        let (replayStatus, replayLog) = try Self.run("undercurrent", ["replay", "--from", "-", "--bootstrap-servers", broker.bootstrapServers], stdin: input)
        #expect(replayStatus == 1, "\(replayLog)")
        #expect(replayLog.contains("- is not an archive of records: its first record is unreadable (archive line 1: expected '{')"), "\(replayLog)")
    }

    /// `replay --from -`: every record of the archive reaches the cluster.
    @Test func replayReadsAnArchiveFromStandardInput() throws {
        let dir = tempDir()
        let (gzip, lines) = try Self.archive(in: dir, gzip: true)
        let broker = try EmbeddedBroker(brokers: 1, logger: quiet)
        try createTopics(broker, prefix: "s.", partitions: 2)
        let (status, stderr) = try Self.run("undercurrent", ["replay", "--from", "-", "--bootstrap-servers", broker.bootstrapServers,
                                                             "--topic-map", "billing=s.billing,payments=s.payments,engagement=s.engagement"],
                                            stdin: try Data(contentsOf: URL(fileURLWithPath: gzip)))
        #expect(status == 0, "\(stderr)")
        let admin = try KafkaAdmin(config: KafkaConfig(bootstrapServers: broker.bootstrapServers), logger: quiet)
        var onTheCluster: Int64 = 0
        for topic in ["s.billing", "s.payments", "s.engagement"] {
            for p in 0..<2 { onTheCluster += try admin.watermarks(TopicPartition(topic, Int32(p))).high }
        }
        #expect(onTheCluster == Int64(lines), "\(stderr)")
    }
}
