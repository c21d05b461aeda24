import Archives
import Config
import Consumer
import Events
import Foundation
import Kafka
import Marts
import Simulation
import Testing
import TestSupport
import UndercurrentCLI

/// `events` as an archive (as `simulate` writes one) named `name` in `dir`; returns its path.
func writeArchive(_ events: [Event], in dir: URL = tempDir(), named name: String = "spike.ndjson") throws -> String {
    let archive = dir.appendingPathComponent(name).path
    let writer = try ArchiveWriter(path: archive)
    for e in events { try writer.write(ArchiveRecord(event: e, value: EventEncoder.encode(e))) }
    try writer.close()
    return archive
}

/// The consumer raises the alerts the engine computes for the same events, whatever their partitioning.
@Suite struct AlertWiringTests {
    @Test func consumerRaisesTheEngineAlertsForAnArchiveWithASpike() throws {
        let rules = try AlertConfig.load(file: nil, configDir: repoConfig.path)
        let events = spikeEvents()
        let dir = tempDir()
        let archive = try writeArchive(events, in: dir)

        var engine = AlertEngine(rules: rules)
        var expected: [Alert] = []
        for e in events { expected += engine.observe(e, source: Int(Murmur2.partition(for: Array(e.customerID.utf8), partitionCount: 4))) }

        var options = MartsConsumer.Options(stateDirectory: dir.appendingPathComponent("state"))
        options.alertRules = rules
        // A dead webhook (nothing listens on port 1): alerts still flow, its failures are counted.
        let hook = AlertWebhook(url: URL(string: "http://127.0.0.1:1/alerts")!, timeout: .milliseconds(500), attempts: 2)
        options.alertWebhook = hook
        let consumer = MartsConsumer(options: options, logger: quiet)
        try consumer.run(archive: archive, partitionCount: 4, stop: StopSignal(handleSignals: false))
        #expect(consumer.alerts == expected)
        #expect(consumer.alerts.contains { $0.state == .firing && $0.scope == "reason:gateway_timeout" })
        #expect(consumer.summary.alertsFiring == consumer.alerts.filter { $0.state == .firing }.count)
        hook.close(wait: .seconds(20))
        let c = hook.counters
        #expect(c.delivered == 0 && c.failed + c.dropped == consumer.alerts.count)
        #expect(c.tries == 2 * c.failed)
    }

    @Test func theProcessPostsEveryAlertBeforeItExits() throws {
        let events = spikeEvents()
        let dir = tempDir()
        let archive = try writeArchive(events, in: dir)
        let receiver = try HTTPReceiver()
        defer { receiver.stop() }
        let state = dir.appendingPathComponent("state")
        let p = try launch("marts-consumer", ["--from-archive", archive, "--partitions", "4", "--state-dir", state.path, "--config-dir", repoConfig.path,
                                              "--alert-webhook", "http://127.0.0.1:\(receiver.port)/alerts", "--log-level", "error"])
        p.waitUntilExit()
        #expect(p.terminationStatus == 0)
        let logged = AlertLog.read(stateDirectory: state).map(\.json)
        #expect(!logged.isEmpty)
        // The consumer's service ended with the archive and the group shut down; every alert the consumer
        // logged, the final checkpoint's included, reached the webhook before the process exited.
        #expect(receiver.bodies.sorted() == logged.sorted())
    }

    @Test func aDeadWebhookNeverBlocksTheCaller() {
        let hook = AlertWebhook(url: URL(string: "http://127.0.0.1:1/alerts")!, timeout: .milliseconds(500), attempts: 3, capacity: 20)
        let alert = Alert(rule: "r", scope: "overall", state: .firing, at: Timestamp(ms: 0), firingSince: Timestamp(ms: 0),
                          observedRate: 0.5, baselineRate: 0.05, attempts: 40, failures: 20, windowMinutes: 10)
        for _ in 0..<500 { hook.post(alert) }
        // 500 posts into a queue of 20 that drains at most one alert per retry cycle: had `post` waited for the
        // webhook, nothing would have been dropped.
        #expect(hook.counters.dropped >= 500 - 20 - 3)
        hook.close(wait: .seconds(30))
        let c = hook.counters
        #expect(c.delivered == 0 && c.failed + c.dropped == 500)
    }
}

/// A minimal HTTP/1.1 server on loopback that answers 204 to every request and keeps the bodies.
final class HTTPReceiver: @unchecked Sendable {
    let port: Int
    private let fd: Int32
    private let lock = NSLock()
    private var received: [String] = []
    var bodies: [String] { lock.withLock { received } }

    init() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.fd = fd
        var yes: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        guard withUnsafeMutablePointer(to: &addr, { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }) == 0,
              listen(fd, 16) == 0 else { throw TestSetupError("cannot listen on loopback") }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        port = Int(UInt16(bigEndian: addr.sin_port))
        let listener = fd
        Thread { [self] in
            while true {
                let c = accept(listener, nil, nil)
                if c < 0 { return }
                Thread { self.serve(c) }.start()
            }
        }.start()
    }

    private func serve(_ c: Int32) {
        defer { close(c) }
        var data = [UInt8]()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            // One request per connection is enough for the webhook, but keep-alive may send more.
            guard let headerEnd = data.firstRange(of: Array("\r\n\r\n".utf8)) else {
                let n = read(c, &buf, buf.count)
                if n <= 0 { return }
                data += buf[0..<n]
                continue
            }
            let head = String(decoding: data[..<headerEnd.lowerBound], as: UTF8.self).lowercased()
            let length = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }
                .flatMap { Int($0.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) } ?? 0
            while data.count < headerEnd.upperBound + length {
                let n = read(c, &buf, buf.count)
                if n <= 0 { return }
                data += buf[0..<n]
            }
            let body = String(decoding: data[headerEnd.upperBound..<(headerEnd.upperBound + length)], as: UTF8.self)
            lock.withLock { received.append(body) }
            data.removeFirst(headerEnd.upperBound + length)
            let answer = Array("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n".utf8)
            _ = answer.withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
        }
    }

    func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
