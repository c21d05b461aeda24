import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Marts
import ServiceLifecycle
import Synchronization

/// Posts alerts to an HTTP endpoint from a thread of its own, so a slow or dead webhook never stalls
/// consumption: `post` only enqueues (and drops, counting, when the bounded queue is full); each alert is
/// tried `attempts` times with a timeout and a growing pause between tries.
public final class AlertWebhook: Sendable {
    public struct Counters: Sendable, Equatable {
        public var delivered = 0
        public var failed = 0
        public var dropped = 0
        public var tries = 0
    }

    private let url: URL
    private let timeout: Duration
    private let attempts: Int
    private let capacity: Int
    private let state = Mutex<(queue: [Alert], counters: Counters, stopped: Bool, closed: Bool)>(([], Counters(), false, false))
    private let wake = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    private let session: URLSession

    public init(url: URL, timeout: Duration = .seconds(2), attempts: Int = 3, capacity: Int = 1000) {
        self.url = url
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.capacity = capacity
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout.seconds
        configuration.timeoutIntervalForResource = timeout.seconds
        session = URLSession(configuration: configuration)
        Thread { [self] in run() }.start()
    }

    /// Enqueues an alert; never blocks.
    public func post(_ alert: Alert) {
        let accepted = state.withLock { s -> Bool in
            guard s.queue.count < capacity else { s.counters.dropped += 1; return false }
            s.queue.append(alert)
            return true
        }
        if accepted { wake.signal() }
    }

    public var counters: Counters { state.withLock { $0.counters } }

    /// Stops after the queue is empty or `wait` passed (alerts still queued then are counted as dropped).
    /// Calls after the first return at once.
    public func close(wait: Duration = .seconds(5)) {
        let first = state.withLock { s -> Bool in
            defer { s.stopped = true; s.closed = true }
            return !s.closed
        }
        guard first else { return }
        wake.signal()
        if done.wait(timeout: .now() + wait.seconds) == .timedOut {
            state.withLock { $0.counters.dropped += $0.queue.count; $0.queue.removeAll() }
        }
    }

    private func run() {
        while true {
            wake.wait()
            while let alert = state.withLock({ s -> Alert? in s.queue.isEmpty ? nil : s.queue.removeFirst() }) {
                var ok = false
                for attempt in 0..<attempts {
                    state.withLock { $0.counters.tries += 1 }
                    if send(alert) { ok = true; break }
                    if attempt + 1 < attempts && !state.withLock({ $0.stopped }) {
                        Thread.sleep(forTimeInterval: min(0.25 * Double(1 << attempt), 5))
                    }
                }
                state.withLock { if ok { $0.counters.delivered += 1 } else { $0.counters.failed += 1 } }
            }
            if state.withLock({ $0.stopped && $0.queue.isEmpty }) {
                done.signal()
                return
            }
        }
    }

    /// One POST; true on a 2xx answer within the timeout.
    private func send(_ alert: Alert) -> Bool {
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = Data(alert.json.utf8)
        let finished = DispatchSemaphore(value: 0)
        let status = Mutex<Int?>(nil)
        let task = session.dataTask(with: request) { _, response, _ in
            status.withLock { $0 = (response as? HTTPURLResponse)?.statusCode }
            finished.signal()
        }
        task.resume()
        if finished.wait(timeout: .now() + timeout.seconds + 0.5) == .timedOut {
            task.cancel()
            return false
        }
        return status.withLock { $0.map { (200..<300).contains($0) } ?? false }
    }
}

/// The sender as a member of the process's `ServiceGroup`: it runs until the group shuts down gracefully,
/// then drains its queue for at most 5 s. Started before the consumer, it stops after it, so the alerts of
/// the consumer's final checkpoint still go out.
extension AlertWebhook: Service {
    public func run() async throws {
        try? await gracefulShutdown()
        close()
    }
}
