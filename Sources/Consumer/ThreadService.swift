import Foundation
import ServiceLifecycle

/// A blocking loop (librdkafka's poll loop, a producer's send loop) as a `Service`: it runs on a thread of its
/// own, never on Swift's cooperative pool, and graceful shutdown or cancellation sets its `StopSignal`, at
/// which the loop finishes its work (a final checkpoint, a flush) and returns. `run` returns or throws when
/// the loop does.
public struct ThreadService: Service, CustomStringConvertible {
    public let description: String
    let stop: StopSignal
    let body: @Sendable () throws -> Void

    /// `body` must return soon after `stop` is set.
    public init(_ name: String, stop: StopSignal, body: @escaping @Sendable () throws -> Void) {
        description = name
        self.stop = stop
        self.body = body
    }

    public func run() async throws {
        let (name, body) = (description, body)
        try await withTaskCancellationOrGracefulShutdownHandler {
            try await withCheckedThrowingContinuation { (done: CheckedContinuation<Void, any Error>) in
                let thread = Thread {
                    do {
                        try body()
                        done.resume()
                    } catch {
                        done.resume(throwing: error)
                    }
                }
                thread.name = name
                thread.start()
            }
        } onCancelOrGracefulShutdown: { [stop] in
            stop.stop()
        }
    }
}
