import Foundation
import Events

/// A one-way gate: closed until `open()`, then open for good. Threads block in `wait(until:)` until it opens
/// or a deadline passes, woken at once by `open()` (no polling). For one thread to hear that another has
/// reached a point: the consumer's first assignment, a stop.
public final class Latch: @unchecked Sendable {
    // `@unchecked Sendable`: `isOpen` is read and written only under `condition`'s lock.
    private let condition = NSCondition()
    private var isOpen = false

    public init() {}

    public var opened: Bool {
        condition.lock()
        defer { condition.unlock() }
        return isOpen
    }

    /// Opens the gate and wakes every waiter. Opening an open gate does nothing.
    public func open() {
        condition.lock()
        isOpen = true
        condition.broadcast()
        condition.unlock()
    }

    /// Blocks until the gate is open (true) or `deadline` has passed (false).
    @discardableResult
    public func wait(until deadline: ContinuousClock.Instant) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !isOpen {
            if !condition.wait(until: deadline) { return false }
        }
        return true
    }

    /// Blocks until the gate is open.
    public func wait() {
        condition.lock()
        defer { condition.unlock() }
        while !isOpen { condition.wait() }
    }
}

extension NSCondition {
    /// Waits (the lock held) until signalled or `deadline` has passed; false when it has passed.
    public func wait(until deadline: ContinuousClock.Instant) -> Bool {
        let left = deadline - ContinuousClock.now
        return left > .zero && wait(until: Date(timeIntervalSinceNow: left.seconds))
    }
}
