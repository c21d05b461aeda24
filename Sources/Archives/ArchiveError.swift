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
