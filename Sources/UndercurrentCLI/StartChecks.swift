import Checkpoints
import Foundation

/// Something a command needs before any work and cannot have: one line naming the path and the reason in
/// words; exit status 2 (`ExitStatus.main`).
public struct StartError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The checks commands run first, so that a path that cannot be written fails at once rather than after the work.
enum StartChecks {
    /// A directory the command writes into (it may be missing if it can be created).
    static func directory(_ path: String, _ what: String) throws {
        if let problem = ErrorWords.directoryProblem(path) { throw StartError("cannot use \(path) as \(what): \(problem)") }
    }

    /// A state directory the command reads the marts from: it must hold a consumer's checkpoints (marts of an
    /// empty or mistyped directory would be empty, and `check` would pass them).
    static func stateDirectory(_ path: String) throws -> StateDirectory {
        let state: StateDirectory
        do { state = try StateDirectory(path) } catch let error as StateDirectoryError { throw StartError(error.description) }
        guard state.hasCheckpoints else {
            throw StartError("state directory \(path) holds no checkpoint: a consumer writes them there (marts-consumer --state-dir \(path))")
        }
        return state
    }

    /// A file the command will write ('-' is standard output).
    static func file(_ path: String?, _ what: String) throws {
        guard let path, path != "-" else { return }
        if let problem = ErrorWords.fileProblem(path) { throw StartError("cannot write \(what) \(path): \(problem)") }
    }
}
