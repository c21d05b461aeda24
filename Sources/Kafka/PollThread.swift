import Foundation
import Synchronization

/// A dedicated thread that runs a blocking step (a librdkafka poll with a timeout) until stopped,
/// so that blocking C calls never occupy Swift's cooperative threads.
final class PollThread: Sendable {
    private let running = Atomic<Bool>(true)
    private let finished = DispatchSemaphore(value: 0)

    init(name: String, step: @escaping @Sendable () -> Void) {
        // The thread holds the PollThread until its loop ends.
        let thread = Thread { [self] in
            while running.load(ordering: .acquiring) { step() }
            finished.signal()
        }
        thread.name = name
        thread.start()
    }

    /// Stops the loop and waits for the current step to return.
    func stop() {
        if running.exchange(false, ordering: .acquiringAndReleasing) { finished.wait() }
    }
}

/// Runs blocking work on a fresh thread and resumes the caller when it is done.
func runBlocking<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        let thread = Thread {
            continuation.resume(with: Result { try work() })
        }
        thread.start()
    }
}
