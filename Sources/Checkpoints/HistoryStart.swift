import Foundation

/// Where a topic-partition's history starts for the marts built from it: the first message the consumer applied,
/// and how many messages before it existed and were never seen (deleted by the broker's retention before the
/// consumer read them, skipped by a `--from-time` start, or missing from an archive that starts late).
public struct HistoryStart: Codable, Sendable, Equatable {
    public enum Gap: String, Codable, Sendable {
        /// Offsets before the first one existed and were gone when the consumer started (retention).
        case deleted
        /// The consumer started at a time on purpose (`--from-time`).
        case skippedByStartTime = "skipped_by_start_time"
        /// The archive's first record of the partition has a later offset (a recording that started late).
        case notInArchive = "not_in_archive"
    }

    public var topic: String
    public var partition: Int32
    public var firstOffset: Int64
    /// The first applied message's timestamp (milliseconds; the event time as the producers write it); with
    /// `skippedByStartTime`, the start time itself.
    public var firstTimestampMs: Int64?
    /// Messages before `firstOffset` that were never seen (offsets 0 up to it).
    public var missedMessages: Int64
    public var gap: Gap?

    public init(topic: String, partition: Int32, firstOffset: Int64, firstTimestampMs: Int64?, missedMessages: Int64, gap: Gap?) {
        self.topic = topic
        self.partition = partition
        self.firstOffset = firstOffset
        self.firstTimestampMs = firstTimestampMs
        self.missedMessages = missedMessages
        self.gap = gap
    }

    /// Whether messages before the first one were never applied (a `--from-time` start always counts).
    public var isPartial: Bool { missedMessages > 0 || gap == .skippedByStartTime }

    enum CodingKeys: String, CodingKey {
        case topic, partition, gap
        case firstOffset = "first_offset", firstTimestampMs = "first_timestamp_ms", missedMessages = "missed_messages"
    }

    /// `partition-N/history.json` in a state directory.
    public static func url(stateDirectory: URL, partition: Int32) -> URL {
        stateDirectory.appendingPathComponent("partition-\(partition)/history.json")
    }

    /// The partition's records; empty when there is none (or it cannot be read: the marts do not depend on it).
    public static func load(stateDirectory: URL, partition: Int32) -> [HistoryStart] {
        guard let data = FileManager.default.contents(atPath: url(stateDirectory: stateDirectory, partition: partition).path) else { return [] }
        return (try? JSONDecoder().decode([HistoryStart].self, from: data)) ?? []
    }

    public static func write(_ records: [HistoryStart], stateDirectory: URL, partition: Int32) throws {
        let url = url(stateDirectory: stateDirectory, partition: partition)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(records.sorted { ($0.topic, $0.partition) < ($1.topic, $1.partition) }).write(to: url, options: .atomic)
    }

    /// One sentence per topic whose history is partial, e.g. "engagement before 2025-08-03 was deleted by the
    /// broker before this consumer saw it (6,146,950 messages on 6 partitions)".
    public static func summaries(_ records: [HistoryStart]) -> [String] {
        Dictionary(grouping: records.filter(\.isPartial), by: \.topic).sorted { $0.key < $1.key }.map { topic, parts in
            let missed = parts.reduce(0) { $0 + $1.missedMessages }
            let since = parts.compactMap(\.firstTimestampMs).max().map { ms -> String in
                let f = DateFormatter()
                f.dateFormat = "yyyy-MM-dd"
                f.timeZone = TimeZone(identifier: "UTC")
                return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
            }
            let why: String
            switch Set(parts.compactMap(\.gap)).count == 1 ? parts.first?.gap : nil {
            case .deleted?: why = "was deleted by the broker before this consumer saw it"
            case .skippedByStartTime?: why = "was skipped (the consumer started at that time, --from-time)"
            case .notInArchive?: why = "is not in the archive"
            case nil: why = "was never seen"
            }
            let count = NumberFormatter.localizedString(from: NSNumber(value: missed), number: .decimal)
            let on = "\(parts.count) partition\(parts.count == 1 ? "" : "s")"
            // Before a start time, what was skipped unread is not counted (what was read and left out is, as
            // `before_start`): no count rather than a wrong one.
            let skippedByTime = parts.allSatisfy { $0.gap == .skippedByStartTime }
            return "\(topic) before \(since ?? "its first message") \(why) (\(skippedByTime ? on : "\(count) messages on \(on)"))"
        }
    }
}

/// What the marts' inputs cover, for `manifest.json`, `/api/history` and `undercurrent check`.
public struct HistoryReport: Encodable, Sendable {
    /// Whether every topic-partition's history is whole.
    public var complete: Bool
    public var gaps: [String]
    /// Customers whose sign-up was never seen: they began inside a gap (or their first events were deleted), so
    /// their lifetime columns (tenure, time to value, lifetime revenue) count only what was seen.
    public var customersWithoutSignup: Int
    /// Every topic-partition with its start, partial ones first.
    public var partitions: [HistoryStart]

    public init(_ history: [HistoryStart], customersWithoutSignup: Int) {
        complete = !history.contains(where: \.isPartial)
        gaps = HistoryStart.summaries(history)
        self.customersWithoutSignup = customersWithoutSignup
        partitions = history.sorted { ($0.isPartial ? 0 : 1, $0.topic, $0.partition) < ($1.isPartial ? 0 : 1, $1.topic, $1.partition) }
    }

    enum CodingKeys: String, CodingKey { case complete, gaps, customersWithoutSignup = "customers_without_signup", partitions }

    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}
