/// A problem with an archive file, in one line that names the file (or line) and what is wrong.
public struct ArchiveError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
