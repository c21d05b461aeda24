import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

/// Where to listen: `HOST:PORT`, loopback unless told otherwise.
struct ListenAddress {
    var host: String
    var port: Int

    static func parse(_ text: String, option: String) throws -> ListenAddress {
        guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            throw ValidationError("\(option): expected HOST:PORT, e.g. 127.0.0.1:8080; got '\(text)'")
        }
        var host = String(text[..<colon])
        if host.hasPrefix("[") && host.hasSuffix("]") {
            host = String(host.dropFirst().dropLast())
        } else if host.contains(":") {
            // `::1` read as host ":" and port 1.
            throw ValidationError("\(option): an IPv6 address goes in brackets, e.g. [::1]:8080; got '\(text)'")
        }
        guard !host.isEmpty else { throw ValidationError("\(option): expected HOST:PORT with a host, e.g. 127.0.0.1:8080; got '\(text)'") }
        return ListenAddress(host: host, port: port)
    }

    /// `http://HOST:PORT` for the port bound, an IPv6 host in brackets (`http://[::1]:8080`, not `http://::1:8080`).
    func url(port: Int) -> String { "http://\(host.contains(":") ? "[\(host)]" : host):\(port)" }

    /// The address parsed and found free to listen on now (see `checkAvailable`).
    static func available(_ text: String, option: String) throws -> ListenAddress {
        let address = try parse(text, option: option)
        try address.checkAvailable(option: option)
        return address
    }

    /// Binds the address once and lets it go, before any work, so that a port another process holds, an address
    /// that is not this machine's or a host that does not resolve stops the command at once with one line (exit
    /// 2) instead of failing after the work with the socket layer's message. Bound as the server binds it
    /// (`SO_REUSEADDR`), so a port left in TIME_WAIT by a previous run passes as it does for the server.
    func checkAvailable(option: String) throws {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
        do {
            let channel = try bootstrap.bind(host: host, port: port).wait()
            try channel.close().wait()
        } catch let error as IOError {
            throw StartError("\(option) \(host):\(port): cannot listen there: \(Self.words(errno: error.errnoCode))")
        } catch is SocketAddressError.UnknownHost {
            throw StartError("\(option) \(host):\(port): cannot listen there: no address found for host '\(host)'")
        } catch SocketAddressError.unknown {
            throw StartError("\(option) \(host):\(port): cannot listen there: no address found for host '\(host)'")
        } catch {
            throw StartError("\(option) \(host):\(port): cannot listen there: \(error)")
        }
    }

    /// Two addresses of one command, each found free alone (`available`), found free together too: bound one while
    /// the other is held, so that two options naming the same port (`127.0.0.1:8200` and `localhost:8200`, or
    /// `0.0.0.0:8200` and `127.0.0.1:8200`) stop the command at start with one line instead of leaving the second
    /// server to fail after the work began.
    static func checkApart(_ first: (address: ListenAddress, option: String), _ second: (address: ListenAddress, option: String),
                           advice: String) throws {
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
        let held = try bootstrap.bind(host: first.address.host, port: first.address.port).wait()
        defer { try? held.close().wait() }
        guard first.address.port != 0 || second.address.port != 0 else { return }  // two ports the system picks never clash
        do {
            try bootstrap.bind(host: second.address.host, port: second.address.port).wait().close().wait()
        } catch {
            throw StartError("\(second.option) \(second.address.host):\(second.address.port) and \(first.option) \(first.address.host):"
                             + "\(first.address.port) name the same port: only one server can listen there; \(advice)")
        }
    }

    static func words(errno code: CInt) -> String {
        switch code {
        case EADDRINUSE: "the port is in use (another process listens on it)"
        case EADDRNOTAVAIL: "the address is not one of this machine's"
        case EACCES: "permission denied (ports below 1024 need privileges)"
        default: String(cString: strerror(code)).lowercased()
        }
    }
}
