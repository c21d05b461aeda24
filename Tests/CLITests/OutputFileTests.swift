import Foundation
import Testing
import TestSupport

/// A file named on the command line that is not a regular file (a FIFO, `/dev/stdout`, `/dev/null`, a device, a
/// link) is written straight into. Before, archives and reports were written to a temporary file renamed over the
/// name: as root that replaced the FIFO, the link or the device with a plain file (`simulate --out /dev/null` left
/// `/dev/null` a regular file for every later process), and the reader at the other end got nothing.
@Suite struct OutputFileTests {
    /// A state directory with a consumer's checkpoints, for `report`.
    static func state(in dir: URL) throws -> String {
        let archive = dir.appendingPathComponent("a.ndjson").path, state = dir.appendingPathComponent("state").path
        for (product, args) in [("undercurrent", ["simulate", "--customers", "30", "--months", "2", "--out", archive]),
                                ("marts-consumer", ["--from-archive", archive, "--state-dir", state, "--no-alerts"])] {
            let (status, stderr) = try BadFlagsTests.run(product, args)
            #expect(status == 0, "\(product) \(args): \(stderr)")
        }
        return state
    }

    static func fileType(_ path: String) -> mode_t {
        var status = stat()
        return lstat(path, &status) == 0 ? status.st_mode & S_IFMT : 0
    }

    /// Starts `cat FIFO` into a file (opening the FIFO waits for the writer).
    static func reader(of fifo: String, into out: URL) throws -> Process {
        try Data().write(to: out)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/cat")
        p.arguments = [fifo]
        p.standardOutput = try FileHandle(forWritingTo: out)
        try p.run()
        return p
    }

    /// A gzip file's content, by `gzip -dc`.
    static func gunzip(_ file: URL) throws -> String {
        let p = Process(), out = Pipe()
        p.executableURL = URL(fileURLWithPath: "/bin/gzip")
        p.arguments = ["-dc", file.path]
        p.standardOutput = out
        try p.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return p.terminationStatus == 0 ? String(decoding: data, as: UTF8.self) : ""
    }

    @Test func aFIFOIsWrittenIntoNotReplaced() throws {
        let dir = tempDir()
        let state = try Self.state(in: dir)
        let simulate = ["simulate", "--customers", "30", "--months", "2", "--out"]
        // Each case: the file's name, the command (the FIFO's path appended), and what the reader must have got.
        let cases: [(name: String, args: [String], check: (URL, String) throws -> Bool)] = [
            ("report.html", ["report", "--state-dir", state, "--out"], { got, _ in
                let text = try String(contentsOf: got, encoding: .utf8)
                return text.hasPrefix("<!doctype html>") && text.hasSuffix("</html>") }),
            ("a.ndjson", simulate, { got, log in Self.linesMatchTheCount(try String(contentsOf: got, encoding: .utf8), log) }),
            ("a.ndjson.gz", simulate, { got, log in Self.linesMatchTheCount(try Self.gunzip(got), log) }),
        ]
        for c in cases {
            let fifo = dir.appendingPathComponent("fifo-" + c.name).path
            try #require(mkfifo(fifo, 0o644) == 0)
            let received = dir.appendingPathComponent(c.name + ".received")
            let reader = try Self.reader(of: fifo, into: received)
            let (status, stderr) = try BadFlagsTests.run("undercurrent", c.args + [fifo])
            // A FIFO replaced by a file leaves its reader waiting for ever on the FIFO no name leads to: ended here,
            // and the checks below fail. A watchdog ends any other wait, which only a regression can cause.
            // (SIGKILL: the reader may have inherited a mask that blocks SIGTERM.)
            if Self.fileType(fifo) != S_IFIFO { kill(reader.processIdentifier, SIGKILL) }
            let watchdog = ContinuousClock.now + .seconds(120)
            while reader.isRunning && ContinuousClock.now < watchdog { Thread.sleep(forTimeInterval: 0.05) }
            if reader.isRunning { kill(reader.processIdentifier, SIGKILL) }
            reader.waitUntilExit()
            #expect(status == 0, "\(c.args): \(stderr)")
            #expect(try reader.terminationStatus == 0 && c.check(received, stderr), "\(c.args): \(stderr)")
            #expect(Self.fileType(fifo) == S_IFIFO, "\(fifo) is no longer a FIFO")
            #expect(!FileManager.default.fileExists(atPath: fifo + ".partial"))
        }
    }

    /// The archive's lines, as many as `simulate` says it wrote.
    static func linesMatchTheCount(_ got: String, _ log: String) -> Bool {
        guard let said = log.firstMatch(of: /wrote (\d+) events/), let n = Int(said.1) else { return false }
        let lines = got.split(separator: "\n")
        return n > 0 && lines.count == n && lines.allSatisfy { $0.hasPrefix("{\"topic\":") }
    }

    /// A link to a regular file: written through, the link kept, the file's old and longer content gone.
    @Test func aLinkIsWrittenThroughAndKept() throws {
        let dir = tempDir()
        let state = try Self.state(in: dir)
        let target = dir.appendingPathComponent("shared-report.html"), link = dir.appendingPathComponent("report.html")
        try Data(repeating: UInt8(ascii: "x"), count: 4 << 20).write(to: target)
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: target.path)
        let (status, stderr) = try BadFlagsTests.run("undercurrent", ["report", "--state-dir", state, "--out", link.path])
        #expect(status == 0, "\(stderr)")
        #expect(Self.fileType(link.path) == S_IFLNK)
        let text = try String(contentsOf: target, encoding: .utf8)
        #expect(text.hasPrefix("<!doctype html>") && text.hasSuffix("</html>") && !text.contains("xxxx"), "\(text.utf8.count) bytes")
    }

    /// A device that refuses the bytes (`/dev/full`): one line naming the file and the reason, exit 1, the device
    /// left as it was.
    @Test func aFullDeviceIsOneLineNamingTheFile() throws {
        try #require(Self.fileType("/dev/full") == S_IFCHR, "/dev/full is not a character device on this machine")
        let state = try Self.state(in: tempDir())
        for (args, what) in [(["report", "--state-dir", state], "the report"), (["simulate", "--customers", "30", "--months", "2"], "the archive")] {
            let (status, stderr) = try BadFlagsTests.run("undercurrent", args + ["--out", "/dev/full"])
            #expect(status == 1, "\(stderr)")
            #expect(stderr == "undercurrent: error: cannot write \(what) /dev/full: no space left on device\n", "\(stderr)")
            #expect(Self.fileType("/dev/full") == S_IFCHR)
        }
    }
}
