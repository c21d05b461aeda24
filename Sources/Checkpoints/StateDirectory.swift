import Events
import Foundation
import Marts

/// Loads every partition's checkpoint under a state directory and merges them.
public struct StateDirectory {
    public let url: URL
    public init(_ path: String) throws {
        url = URL(fileURLWithPath: path)
        guard FileManager.default.fileExists(atPath: path) else { throw StateDirectoryError(path: path, problem: "does not exist") }
    }

    /// Whether any partition has a checkpoint here (a directory the consumer never wrote into has none).
    public var hasCheckpoints: Bool { !CheckpointStore.partitions(in: url).isEmpty }

    public func load() throws -> (MartSnapshot, offsets: [String: [Int32: Int64]]) {
        var snapshot = MartSnapshot()
        var offsets: [String: [Int32: Int64]] = [:]
        for p in CheckpointStore.partitions(in: url) {
            guard let loaded = try CheckpointStore(stateDirectory: url, partition: p).load() else { continue }
            snapshot.add(loaded.state)
            for (t, o) in loaded.offsets { offsets[t, default: [:]][p] = o }
        }
        return (snapshot, offsets)
    }

    /// Where each topic-partition's history starts (see `HistoryStart`), for every partition that recorded it.
    public func history() -> [HistoryStart] {
        CheckpointStore.partitions(in: url).flatMap { HistoryStart.load(stateDirectory: url, partition: $0) }
    }
}

/// A state directory that cannot be read.
public struct StateDirectoryError: Error, CustomStringConvertible, Sendable {
    public var path: String
    public var problem: String
    public var description: String { "state directory \(path) \(problem)" }
}
