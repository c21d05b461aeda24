import Foundation
import Logging
import ServiceLifecycle
import Synchronization

/// Runs services in one `ServiceGroup` until they finish, or until `stop` is set (SIGINT / SIGTERM, which
/// `StopSignal` handles for the whole process) shuts them down gracefully, in the reverse of their order.
/// Called from a synchronous caller (a command's `run`), whose thread waits for the group.
public enum ServiceRunner {
    /// `shutdownOnStop: false` for services that each watch `stop` themselves and may finish in any order (the
    /// demo's loops): the group then returns once all have returned. (A group shutting down gracefully takes a
    /// service that returns before its turn for a failure.)
    public static func run(_ services: [ServiceGroupConfiguration.ServiceConfiguration], stop: StopSignal, logger: Logger, shutdownOnStop: Bool = true) throws {
        let group = ServiceGroup(configuration: .init(services: services, logger: logger))
        if shutdownOnStop { stop.onStop { Task { await group.triggerGracefulShutdown() } } }
        let outcome = Mutex<Result<Void, any Error>>(.success(()))
        let done = DispatchSemaphore(value: 0)
        Task {
            do { try await group.run() } catch { outcome.withLock { $0 = .failure(error) } }
            done.signal()
        }
        done.wait()
        try outcome.withLock { $0 }.get()
    }

    /// Runs a blocking loop (a producer's, `record`'s, `replay`'s) as a service of a group, on a thread of its own,
    /// after `services` (a metrics endpoint), and returns what it returned. `body` must return soon after `stop`
    /// is set; when it returns, the other services stop.
    public static func runBlocking<T>(_ name: String, stop: StopSignal, logger: Logger, with services: [ServiceGroupConfiguration.ServiceConfiguration] = [],
                               _ body: @escaping () throws -> T) throws -> T {
        let job = BlockingJob(body)
        try run(services + [.init(service: ThreadService(name, stop: stop) { try job.run() }, successTerminationBehavior: .gracefullyShutdownGroup,
                       failureTerminationBehavior: .gracefullyShutdownGroup, serviceName: name)], stop: stop, logger: logger)
        return try job.result()
    }
}

/// The blocking loop of `ServiceRunner.runBlocking` did not run to its end: the group stopped before.
public struct StoppedBeforeFinishing: Error, CustomStringConvertible, Sendable {
    public var description: String { "stopped before it finished" }
}

/// A job handed to the thread that runs it, and its result handed back.
///
/// `@unchecked Sendable`: `body` and `outcome` are used by the service's thread while it runs, and read by the
/// caller only after the service group has returned.
private final class BlockingJob<T>: @unchecked Sendable {
    private let body: () throws -> T
    private var outcome: Result<T, any Error>?
    init(_ body: @escaping () throws -> T) { self.body = body }
    func run() throws { outcome = Result { try body() } }
    func result() throws -> T {
        guard let outcome else { throw StoppedBeforeFinishing() }
        return try outcome.get()
    }
}
