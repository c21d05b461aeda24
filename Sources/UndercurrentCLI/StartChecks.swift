import ArgumentParser
import Archives
import Checkpoints
import Events
import Foundation

/// Something a command needs before any work and cannot have: one line naming the path and the reason in
/// words; exit status 2 (`ExitStatus.main`).
public struct StartError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The checks commands run first, so that a path that cannot be written fails at once rather than after the work.
enum StartChecks {
    /// A topic name given on the command line, by Kafka's rule (`Topics.problem(with:)`).
    static func topicName(_ name: String, option: String) throws {
        if let problem = Topics.problem(with: name) { throw ValidationError("\(option): \(problem)") }
    }

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

    /// An archive the command reads: an existing file whose first record reads as one (an empty file is an empty
    /// history). A directory or a file of something else would otherwise be read to its end, every line rejected.
    ///
    /// A stream (standard input `-`, a pipe, a FIFO: `ArchiveReader.isStream`) is not read here: what this read of
    /// it would be gone for the command. The command stops at its first record instead, if that is unreadable.
    static func archive(_ path: String) throws {
        if ArchiveReader.isStream(path) { return }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw StartError("archive \(path) does not exist") }
        guard !isDirectory.boolValue else { throw StartError("archive \(path) is a directory, not a file") }
        let reader: ArchiveReader
        do { reader = try ArchiveReader(path: path) } catch { throw StartError("cannot read the archive \(path): \(error)") }
        var records = reader.makeIterator()
        if case let .failure(e)? = records.next(), !e.truncated {
            throw StartError(ArchiveError.notAnArchive(path, firstRecord: "\(e)").description)
        }
    }

    /// A file the command will write ('-' is standard output).
    static func file(_ path: String?, _ what: String) throws {
        guard let path, path != "-" else { return }
        if let problem = ErrorWords.fileProblem(path) { throw StartError("cannot write \(what) \(path): \(problem)") }
    }
}
