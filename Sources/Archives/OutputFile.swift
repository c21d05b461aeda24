import Foundation

/// How a file a person named on the command line is written.
///
/// A regular file, or one that does not exist yet, is written to a temporary file beside it that is renamed over
/// it at the end: a reader never sees half of it, and an interrupted run leaves the old one. Anything else
/// (`/dev/stdout`, which is a link, a FIFO, a terminal, `/dev/null`) is written straight into: a rename would
/// replace the link or the device with a plain file (as root, even in `/dev`), and the reader at the other end
/// would get nothing.
public enum OutputFile {
    /// Whether `path` is written straight into rather than replaced: it exists and is not itself a regular file
    /// (a symbolic link, a device, a FIFO, a socket). A directory is not: writing it fails as it would anyway.
    public static func writesInPlace(_ path: String) -> Bool {
        var status = stat()
        guard lstat(path, &status) == 0 else { return false }
        let type = status.st_mode & S_IFMT
        return type != S_IFREG && type != S_IFDIR
    }

    /// Writes `data` to `path` as described above. A link to a regular file is written through (truncated first),
    /// so the link stays.
    public static func write(_ data: Data, to path: String) throws {
        guard writesInPlace(path) else {
            try data.write(to: URL(fileURLWithPath: path), options: .atomic)
            return
        }
        let handle = try openInPlace(path)
        defer { try? handle.close() }
        try handle.write(contentsOf: data)
    }

    /// `path` opened for writing from its start: a regular file it leads to is truncated (a device or a FIFO
    /// cannot be). Opening a FIFO waits for its reader.
    public static func openInPlace(_ path: String) throws -> FileHandle {
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        var status = stat()
        if fstat(handle.fileDescriptor, &status) == 0, status.st_mode & S_IFMT == S_IFREG { try handle.truncate(atOffset: 0) }
        return handle
    }
}
