/// A problem with an archive file, in one line that names the file (or line) and what is wrong.
public struct ArchiveError: Error, CustomStringConvertible, Sendable {
    public var description: String
    /// The archive ends early (a gzip stream cut off): every complete line before it was read.
    public var truncated = false
    public init(_ description: String, truncated: Bool = false) {
        self.description = description
        self.truncated = truncated
    }
}

extension ArchiveError {
    /// A file or stream whose first record does not read as one: not an archive at all (a CSV, a mart export, the
    /// wrong file), refused rather than read to its end with every line rejected.
    public static func notAnArchive(_ path: String, firstRecord problem: String) -> ArchiveError {
        ArchiveError("\(path) is not an archive of records: its first record is unreadable (\(problem))")
    }
}
