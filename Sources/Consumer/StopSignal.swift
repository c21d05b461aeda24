import Foundation
import Synchronization

/// Turns SIGINT and SIGTERM into a flag that long-running loops check, so that every process can stop
/// at a safe point (after a flush or a checkpoint) instead of dying mid-write. It is a process's one
/// handler of those signals: a `ServiceGroup` hears of them through `onStop` (see `ServiceRunner`), so that a
/// second signal can still end the process at once.
public final class StopSignal: Sendable {
    private let stopped = Atomic<Bool>(false)
    private let signalName = Mutex<String?>(nil)
    private let handlers = Mutex<[@Sendable () -> Void]>([])
    /// Opened when the flag is set: what `sleep` and `wait` block on.
    private let latch = Latch()
    private nonisolated(unsafe) var sources: [DispatchSourceSignal] = []

    public init(handleSignals: Bool = true) {
        guard handleSignals else { return }
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            source.setEventHandler { [self, source] in  // (the source lives as long as the process anyway)
                signalName.withLock { $0 = sig == SIGINT ? "SIGINT" : "SIGTERM" }
                // `data`: how many of this signal arrived since the handler last ran (a quick double Ctrl-C is one event).
                if Self.insists(alreadyStopped: stopped.exchange(true, ordering: .acquiringAndReleasing), signals: source.data) {
                    Self.sayExitingNow.withLock { $0 }("second signal: exiting now")
                    exit(130)
                }
                notify()
            }
            source.resume()
            sources.append(source)
        }
    }

    /// Whether a signal ends the process at once: a second one (the user insists), whether the first was heard
    /// on its own or in the same event.
    static func insists(alreadyStopped: Bool, signals: UInt) -> Bool { alreadyStopped || signals > 1 }

    /// Writes the line said when a second signal ends the process: plain on standard error, unless the process
    /// logs JSON (the CLI sets a writer of JSON entries then).
    public static let sayExitingNow = Mutex<@Sendable (String) -> Void>({ line in
        FileHandle.standardError.write(Data((line + "\n").utf8))
    })

    public var isStopped: Bool { stopped.load(ordering: .acquiring) }
    public var receivedSignal: String? { signalName.withLock { $0 } }
    public func stop() {
        if !stopped.exchange(true, ordering: .acquiringAndReleasing) { notify() }
    }

    /// Calls `handler` once when the flag is set (at once if it already is), on the thread that set it.
    public func onStop(_ handler: @escaping @Sendable () -> Void) {
        let now = handlers.withLock { h -> Bool in
            if isStopped { return true }
            h.append(handler)
            return false
        }
        if now { handler() }
    }

    private func notify() {
        latch.open()
        for h in handlers.withLock({ h -> [@Sendable () -> Void] in defer { h.removeAll() }; return h }) { h() }
    }

    /// Sleeps until `duration` has passed or the flag is set, whichever comes first (woken at once by a stop).
    public func sleep(_ duration: Duration) {
        latch.wait(until: ContinuousClock.now + duration)
    }

    /// Blocks until the flag is set.
    public func wait() {
        latch.wait()
    }
}
