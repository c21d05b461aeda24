import Foundation

/// A private PostgreSQL cluster for one test: `initdb` in a temporary directory, a free port on loopback,
/// password authentication over TCP (user `postgres`, password `secret`), stopped and removed by `stop()`.
/// As root the server runs as the `postgres` user (it refuses to run as root). Needs Debian's `postgresql`
/// (scripts/test.sh installs it).
public final class PostgresServer: @unchecked Sendable {
    public static let password = "secret"
    public private(set) var port = 0
    let fsync: Bool
    public let directory: URL
    let bin: URL
    let asRoot: Bool

    public var data: URL { directory.appendingPathComponent("data") }

    /// A connection URI for `database` (without the password unless `withPassword`).
    public func uri(_ database: String = "postgres", user: String = "postgres", withPassword: Bool = true) -> String {
        "postgresql://\(user)\(withPassword ? ":\(Self.password)" : "")@127.0.0.1:\(port)/\(database)"
    }

    /// Where Debian keeps the server's programs (the newest major version).
    public static func binDirectory() throws -> URL {
        let root = URL(fileURLWithPath: "/usr/lib/postgresql")
        let versions = (try? FileManager.default.contentsOfDirectory(atPath: root.path)) ?? []
        guard let v = versions.compactMap(Int.init).max() else {
            throw TestSetupError("PostgreSQL is not installed (apt-get install -y postgresql; scripts/test.sh does it)")
        }
        return root.appendingPathComponent("\(v)/bin")
    }

    public init(fsync: Bool = false) throws {
        self.fsync = fsync
        bin = try Self.binDirectory()
        asRoot = getuid() == 0
        directory = URL(fileURLWithPath: NSTemporaryDirectory()).appendingPathComponent("uc-pg-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let pw = directory.appendingPathComponent("pw")
        try Data(Self.password.utf8).write(to: pw)
        if asRoot {
            try Self.run("/bin/chown", ["-R", "postgres:postgres", directory.path])
        }
        try run("initdb", ["-D", data.path, "-U", "postgres", "--pwfile", pw.path, "--auth-local=trust", "--auth-host=scram-sha-256",
                           "--no-sync", "-E", "UTF8", "--locale=C"])
        for _ in 0..<5 {
            port = Self.freePort()
            do {
                try start()
                return
            } catch {
                continue  // the port was taken meanwhile
            }
        }
        throw TestSetupError("PostgreSQL did not start; see \(directory.path)/log")
    }

    /// Runs SQL through psql over the local socket as `postgres`; returns its output (unaligned, no headers).
    @discardableResult
    public func psql(_ sql: String, database: String = "postgres") throws -> String {
        try run("psql", ["-h", directory.path, "-p", String(port), "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
    }

    /// Stops the server at once (as a crash would) and starts it again on the same port.
    public func restartImmediately() throws {
        try run("pg_ctl", ["-D", data.path, "-m", "immediate", "-w", "stop"])
        try start()
    }

    public func stopServer() throws { try run("pg_ctl", ["-D", data.path, "-m", "fast", "-w", "stop"]) }

    public func start() throws {
        let options = "-p \(port) -c listen_addresses=127.0.0.1 -k \(directory.path) -c fsync=\(fsync ? "on" : "off") -c max_connections=50"
        try run("pg_ctl", ["-D", data.path, "-o", options, "-l", directory.appendingPathComponent("log").path, "-w", "-t", "60", "start"])
    }

    public func stop() {
        _ = try? run("pg_ctl", ["-D", data.path, "-m", "immediate", "-w", "stop"])
        try? FileManager.default.removeItem(at: directory)
    }

    @discardableResult
    func run(_ tool: String, _ args: [String]) throws -> String {
        let path = bin.appendingPathComponent(tool).path
        if asRoot { return try Self.run("/usr/sbin/runuser", ["-u", "postgres", "--", "/usr/bin/env", "-C", "/tmp", path] + args) }
        return try Self.run(path, args)
    }

    /// Runs a program to its end with posix_spawn and waitpid. Not Foundation's Process: it notices the end
    /// through a descriptor the child inherits, which the server pg_ctl starts would keep open for good.
    @discardableResult
    static func run(_ path: String, _ args: [String]) throws -> String {
        let outPath = NSTemporaryDirectory() + "uc-pg-out-\(UUID().uuidString)"
        defer { unlink(outPath) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let argv: [UnsafeMutablePointer<CChar>?] = ([path] + args).map { strdup($0) } + [nil]
        defer { for a in argv { free(a) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, nil, argv, environ)
        guard rc == 0 else { throw TestSetupError("cannot start \(path): \(String(cString: strerror(rc)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let text = ((try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
        let exited = (status & 0x7f) == 0, code = (status >> 8) & 0xff
        guard exited && code == 0 else {
            throw TestSetupError("\(URL(fileURLWithPath: path).lastPathComponent) \(args.joined(separator: " ")) failed: \(text)")
        }
        return text
    }

    public static func freePort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
