import Archives
import Checkpoints
import Foundation

/// A one-line error for the user: printed as `Error: <description>`, exit status 1.
public struct CLIError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension OutputFile {
    /// `write(_:to:)`, its failure one line naming the file and the reason in words (a full disk, a vanished
    /// directory), exit status 1, instead of Foundation's description of the error.
    static func write(_ data: Data, to path: String, what: String) throws {
        try writing(what, path) { try write(data, to: path) }
    }

    /// Runs `body`, which writes the file at `path`; a file error it throws (a full disk) becomes one line naming
    /// the file and the reason, exit status 1.
    static func writing<T>(_ what: String, _ path: String, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as NSError where error.domain == NSCocoaErrorDomain || error.domain == NSPOSIXErrorDomain {
            throw CLIError("cannot write \(what) \(path): \(ErrorWords.describe(error))")
        }
    }
}
