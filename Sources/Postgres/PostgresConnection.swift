import Foundation
import CLibPQ

/// A failure talking to PostgreSQL: the server's message and, when the server sent one, its SQLSTATE.
public struct PostgresError: Error, CustomStringConvertible, Sendable {
    public enum Code: Sendable, Equatable {
        /// The connection string cannot be parsed.
        case invalidURI
        /// The server cannot be reached now (refused, timed out, starting up or shutting down, connection
        /// lost): worth retrying.
        case unavailable
        /// The server refused us for good: wrong credentials, no such database or role, no permission.
        case rejected
        /// A statement failed (see `sqlState`).
        case statement
    }

    public var code: Code
    public var message: String
    /// The five-character SQLSTATE, e.g. `42P01` for an undefined table.
    public var sqlState: String?

    public init(code: Code, message: String, sqlState: String? = nil) {
        self.code = code
        self.message = message
        self.sqlState = sqlState
    }

    public var description: String { sqlState.map { "\(message) (SQLSTATE \($0))" } ?? message }

    /// Worth retrying later: the server or the connection went away, or it is busy starting or stopping.
    public var isTransient: Bool {
        switch code {
        case .unavailable: return true
        case .invalidURI, .rejected: return false
        case .statement:
            // Class 08: connection exceptions; 57P: operator intervention (shutdown, crash); 40: rollbacks;
            // 55P03: a lock another session holds (lock_timeout).
            guard let s = sqlState else { return true }  // no SQLSTATE: the connection broke mid-statement
            return s.hasPrefix("08") || s.hasPrefix("57P") || s.hasPrefix("40") || s == "53300" || s == "55P03"
        }
    }
}

/// One libpq connection, used from one thread at a time. The only Swift code that calls libpq.
///
/// The connection is non-blocking underneath: every wait for the server (to take what is sent, or to answer) is a
/// `poll` of its socket, bounded by `responseTimeout` when one is set. A server that stops answering while its
/// host still acknowledges (a stopped or wedged backend, where TCP keepalives see nothing wrong) then fails the
/// call instead of holding the calling thread for as long as it lasts; the connection is given up (`isOpen` false).
public final class PostgresConnection {
    private let conn: OpaquePointer
    private var copyError: String?
    /// Why the connection was given up (a wait that timed out); every call fails at once after it.
    private var brokenReason: String?
    /// The longest a call waits without the server taking or sending anything; nil waits as long as it takes.
    public var responseTimeout: Duration?

    /// Connects with a libpq connection URI or keyword string; the password comes from the URI,
    /// `PGPASSWORD` or `~/.pgpass`, as libpq finds it. `connectTimeout` applies unless the URI sets one, and so do
    /// TCP keepalives after 10 s idle (3 probes 5 s apart) and a 30 s limit on unacknowledged data
    /// (`tcp_user_timeout`): by these settings, a server whose host or network went away fails the call after about
    /// 30 s, where Linux's defaults (`tcp_retries2`, a 2-hour keepalive) take 15 minutes or more.
    public init(uri: String, applicationName: String = "undercurrent", connectTimeout: Int = 5, responseTimeout: Duration? = nil) throws(PostgresError) {
        try PostgresURI.validate(uri)
        // Earlier keywords are overridden by what the expanded URI says.
        let keys = ["connect_timeout", "application_name", "keepalives", "keepalives_idle", "keepalives_interval", "keepalives_count",
                    "tcp_user_timeout", "dbname"]
        let values = [String(connectTimeout), applicationName, "1", "10", "5", "3", "30000", uri]
        let c = withCStrings(keys) { k in withCStrings(values) { v in PQconnectdbParams(k, v, 1) } }
        guard let c else { throw PostgresError(code: .unavailable, message: "out of memory connecting to PostgreSQL") }
        guard PQstatus(c) == CONNECTION_OK else {
            let message = Self.clean(String(cString: PQerrorMessage(c)))
            PQfinish(c)
            throw PostgresError(code: Self.isRejection(message) ? .rejected : .unavailable, message: message)
        }
        // (Before `conn` is set: once it is, a throw would run `deinit`, which finishes the connection too.)
        guard PQsetnonblocking(c, 1) == 0 else {
            let message = Self.clean(String(cString: PQerrorMessage(c)))
            PQfinish(c)
            throw PostgresError(code: .unavailable, message: message)
        }
        // Notices (e.g. "relation already exists, skipping") are not ours to print.
        PQsetNoticeProcessor(c, { _, _ in }, nil)
        conn = c
        self.responseTimeout = responseTimeout
    }

    deinit { PQfinish(conn) }

    /// Whether the connection is still usable (not broken by a server restart, nor given up for not answering).
    public var isOpen: Bool { brokenReason == nil && PQstatus(conn) == CONNECTION_OK }

    /// Runs one or more statements without parameters; returns the last one's result (or throws the first failure).
    @discardableResult
    public func execute(_ sql: String) throws(PostgresError) -> PostgresResult {
        try sendThen({ PQsendQuery(conn, sql) }, collect)
    }

    /// Runs one statement with text parameters ($1, $2, …; nil is NULL).
    @discardableResult
    public func query(_ sql: String, _ parameters: [String?]) throws(PostgresError) -> PostgresResult {
        try sendThen({
            withOptionalCStrings(parameters) { values in PQsendQueryParams(conn, sql, Int32(parameters.count), nil, values, nil, nil, 0) }
        }, collect)
    }

    /// Prepares a named statement for `executePrepared`.
    public func prepare(_ name: String, _ sql: String, parameterCount: Int) throws(PostgresError) {
        try sendThen({ PQsendPrepare(conn, name, sql, Int32(parameterCount), nil) }, collect)
    }

    /// Runs a statement prepared with `prepare`.
    @discardableResult
    public func executePrepared(_ name: String, _ parameters: [String?]) throws(PostgresError) -> PostgresResult {
        try sendThen({
            withOptionalCStrings(parameters) { values in PQsendQueryPrepared(conn, name, Int32(parameters.count), values, nil, nil, 0) }
        }, collect)
    }

    /// Sends statements without waiting for them to run, so that the server runs them while this thread works on.
    /// `waitForSent` must come before any other call on this connection.
    public func send(_ sql: String) throws(PostgresError) {
        try sendThen({ PQsendQuery(conn, sql) }) { () throws(PostgresError) in }
    }

    /// Waits until what `send` sent has run; throws the first failure among its statements.
    public func waitForSent() throws(PostgresError) {
        _ = try collect()
    }

    /// Starts `COPY … FROM STDIN`; send rows with `putCopyData` (as they are made: the server parses one
    /// chunk while the next is built), then `endCopy`. No other statement may run in between.
    public func beginCopy(_ sql: String) throws(PostgresError) {
        try sendThen({ PQsendQuery(conn, sql) }) { () throws(PostgresError) in
            guard let start = try nextResult() else { throw failure() }
            defer { PQclear(start) }
            guard PQresultStatus(start) == PGRES_COPY_IN else {
                let error = failure(start)
                while let r = try nextResult() { PQclear(r) }
                throw error
            }
        }
        copyError = nil
    }

    /// Sends rows of an open COPY. A failure of the server's is kept and reported by `endCopy`; a server that
    /// stops taking them fails the call.
    public func putCopyData(_ data: [UInt8]) throws(PostgresError) {
        guard copyError == nil, !data.isEmpty else { return }
        try usable()
        let chunk = 1 << 20
        var offset = 0
        while offset < data.count {
            let n = min(chunk, data.count - offset)
            let sent = data.withUnsafeBufferPointer { buf in
                buf.baseAddress!.advanced(by: offset).withMemoryRebound(to: CChar.self, capacity: n) { PQputCopyData(conn, $0, Int32(n)) }
            }
            if sent < 0 {
                copyError = String(cString: PQerrorMessage(conn))
                return
            }
            if sent == 1 { offset += n }
            // Sent on, or (0: libpq's buffer is full) room made by sending what it holds.
            try flush()
        }
    }

    /// Ends an open COPY; returns the rows copied.
    @discardableResult
    public func endCopy() throws(PostgresError) -> Int {
        try usable()
        while true {
            let r = PQputCopyEnd(conn, copyError)
            if r == 1 { break }
            if r < 0 {
                copyError = copyError ?? String(cString: PQerrorMessage(conn))
                break
            }
            try flush()
        }
        try flush()
        var copied = 0
        var firstError: PostgresError?
        while let r = try nextResult() {
            if PQresultStatus(r) == PGRES_COMMAND_OK {
                copied = Int(String(cString: PQcmdTuples(r))) ?? 0
            } else if firstError == nil {
                firstError = failure(r)
            }
            PQclear(r)
        }
        if let firstError { throw firstError }
        if let copyError { throw PostgresError(code: .statement, message: Self.clean(copyError)) }
        return copied
    }

    // MARK: Waiting for the server

    /// Fails at once on a connection given up before.
    private func usable() throws(PostgresError) {
        if let brokenReason { throw PostgresError(code: .unavailable, message: brokenReason) }
    }

    /// Queues a command with `start` (a `PQsend…` call), sends it, then runs `then`.
    private func sendThen<T>(_ start: () -> Int32, _ then: () throws(PostgresError) -> T) throws(PostgresError) -> T {
        try usable()
        guard start() == 1 else { throw failure() }
        try flush()
        return try then()
    }

    /// Sends everything libpq holds, reading what the server sends meanwhile (as libpq asks of non-blocking use).
    private func flush() throws(PostgresError) {
        while true {
            let r = PQflush(conn)
            if r == 0 { return }
            if r < 0 { throw failure() }
            if try waitForSocket(Int16(POLLIN) | Int16(POLLOUT)) & Int16(POLLIN) != 0, PQconsumeInput(conn) != 1 { throw failure() }
        }
    }

    /// The next result of what was sent (nil when there is no more), waiting for the server as long as it is busy.
    private func nextResult() throws(PostgresError) -> OpaquePointer? {
        while PQisBusy(conn) == 1 {
            _ = try waitForSocket(Int16(POLLIN))
            guard PQconsumeInput(conn) == 1 else { throw failure() }
        }
        return PQgetResult(conn)
    }

    /// Every result of what was sent: the last one, or the first failure (thrown once all are read).
    private func collect() throws(PostgresError) -> PostgresResult {
        var last = PostgresResult(columns: [], rows: [], affected: 0)
        var firstError: PostgresError?
        while let r = try nextResult() {
            do { last = try take(r) } catch { if firstError == nil { firstError = error } }
        }
        if let firstError { throw firstError }
        return last
    }

    /// Waits until the socket is ready for one of `events`; returns the events it is ready for. Past
    /// `responseTimeout` without either, the connection is given up.
    private func waitForSocket(_ events: Int16) throws(PostgresError) -> Int16 {
        let fd = PQsocket(conn)
        guard fd >= 0 else { throw failure() }
        let deadline = responseTimeout.map { ContinuousClock.now + $0 }
        while true {
            var ms: Int32 = -1
            if let deadline {
                let left = Self.milliseconds(deadline - ContinuousClock.now)
                ms = Int32(max(0, min(left.rounded(.up), Double(Int32.max))))
            }
            var p = pollfd(fd: fd, events: events, revents: 0)
            let n = poll(&p, 1, ms)
            if n > 0 { return p.revents }
            if n < 0 && errno == EINTR { continue }
            if n < 0 { throw PostgresError(code: .unavailable, message: "waiting for the server failed (errno \(errno))") }
            if let deadline, ContinuousClock.now >= deadline {
                let ms = Self.milliseconds(responseTimeout!)
                let reason = "the server did not answer for \(ms.truncatingRemainder(dividingBy: 1000) == 0 ? "\(Int(ms / 1000)) s" : "\(Int(ms)) ms"): "
                    + "connection given up"
                brokenReason = reason
                throw PostgresError(code: .unavailable, message: reason)
            }
        }
    }

    private static func milliseconds(_ d: Duration) -> Double {
        Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15
    }

    // MARK: Results and errors

    @discardableResult
    private func take(_ result: OpaquePointer?) throws(PostgresError) -> PostgresResult {
        guard let result else { throw failure() }
        defer { PQclear(result) }
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_EMPTY_QUERY:
            return PostgresResult(columns: [], rows: [], affected: Int(String(cString: PQcmdTuples(result))) ?? 0)
        case PGRES_TUPLES_OK:
            let nr = PQntuples(result), nc = PQnfields(result)
            let columns = (0..<nc).map { String(cString: PQfname(result, $0)) }
            var rows: [[String?]] = []
            rows.reserveCapacity(Int(nr))
            for r in 0..<nr {
                rows.append((0..<nc).map { c in PQgetisnull(result, r, c) == 1 ? nil : String(cString: PQgetvalue(result, r, c)) })
            }
            return PostgresResult(columns: columns, rows: rows, affected: Int(nr))
        default:
            throw failure(result)
        }
    }

    private func failure(_ result: OpaquePointer? = nil) -> PostgresError {
        var state: String?
        var message = String(cString: PQerrorMessage(conn))
        if let result {
            if let s = PQresultErrorField(result, Int32(UInt8(ascii: "C"))) { state = String(cString: s) }
            if let m = PQresultErrorField(result, Int32(UInt8(ascii: "M"))) { message = String(cString: m) }
        }
        return PostgresError(code: PQstatus(conn) == CONNECTION_OK ? .statement : .unavailable, message: Self.clean(message), sqlState: state)
    }

    /// libpq's multi-line messages on one line.
    static func clean(_ message: String) -> String {
        message.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }.joined(separator: "; ")
    }

    /// A connection failure the server decided (credentials, database, role, permission), not the network.
    static func isRejection(_ message: String) -> Bool {
        let m = message.lowercased()
        return ["authentication failed", "does not exist", "no password supplied", "permission denied", "not permitted",
                "no pg_hba.conf entry", "password is required", "invalid", "role"].contains { m.contains($0) }
            && !m.contains("starting up") && !m.contains("shutting down")
    }
}

/// The rows of a query, as text (nil for NULL).
public struct PostgresResult: Sendable {
    public var columns: [String]
    public var rows: [[String?]]
    /// Rows returned, or affected by an INSERT / UPDATE / DELETE.
    public var affected: Int
}

/// Connection strings: checking and redacting them.
public enum PostgresURI {
    /// Throws `.invalidURI` with libpq's reason when libpq cannot parse it.
    public static func validate(_ uri: String) throws(PostgresError) {
        var err: UnsafeMutablePointer<CChar>?
        guard let options = PQconninfoParse(uri, &err) else {
            let reason = err.map { String(cString: $0) } ?? "cannot be parsed"
            if let err { PQfreemem(err) }
            throw PostgresError(code: .invalidURI, message: "\(redacted(uri)): \(PostgresConnection.clean(reason))")
        }
        PQconninfoFree(options)
    }

    /// The URI with the password (in the authority or as `password=`) replaced by `***`.
    public static func redacted(_ uri: String) -> String {
        var s = uri
        if let scheme = s.range(of: "://") {
            let rest = s[scheme.upperBound...]
            let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
            if let at = rest[..<authorityEnd].lastIndex(of: "@"), let colon = rest[..<at].firstIndex(of: ":") {
                s.replaceSubrange(s.index(after: colon)..<at, with: "***")
            }
        }
        // password=… as a query parameter or keyword, up to the next separator.
        var out = ""
        var rest = Substring(s)
        while let r = rest.range(of: "password=") {
            out += rest[..<r.upperBound]
            rest = rest[r.upperBound...]
            let end = rest.firstIndex(where: { $0 == "&" || $0 == " " }) ?? rest.endIndex
            out += "***"
            rest = rest[end...]
        }
        return out + rest
    }
}

private func withCStrings<R>(_ strings: [String], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    var pointers: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    pointers.append(nil)
    defer { for p in pointers { free(p) } }
    return body(pointers.map { UnsafePointer($0) })
}

private func withOptionalCStrings<R>(_ strings: [String?], _ body: ([UnsafePointer<CChar>?]) -> R) -> R {
    let pointers: [UnsafeMutablePointer<CChar>?] = strings.map { $0.map { strdup($0) } ?? nil }
    defer { for p in pointers { free(p) } }
    return body(pointers.map { UnsafePointer($0) })
}
