import Consumer
import Archives
import ArgumentParser
import Events
import Foundation
import Kafka
import Logging

/// A time on the command line: RFC 3339 (`2025-03-01T12:00:00Z`) or a date (`2025-03-01`, midnight UTC).
public enum TimeArgument {
    public static func parse(_ text: String, option: String) throws -> Timestamp {
        if let t = Timestamp(rfc3339: text) { return t }
        if let d = Day(iso: Array(text.utf8)) { return Timestamp(ms: d.days * Timestamp.millisecondsPerDay) }
        throw ValidationError("\(option): expected a time like 2025-03-01T12:00:00Z or a date 2025-03-01, got '\(text)'")
    }
}

// MARK: Recording
