import Events
import Foundation

/// Buffered writing of archive lines to a file (gzip-compressed when its name ends in `.gz`), or stdout for "-".
public final class ArchiveWriter {
    private enum Sink {
        case handle(FileHandle)
        case gzip(GzipFile)
    }
    private let sink: Sink
    private var buffer: [UInt8] = []
    private let path: String
    private let tempPath: String?
    public private(set) var records = 0

    /// Writes to a temporary file renamed into place by `close()`, so an interrupted run never leaves a
    /// truncated archive under the final name; straight into a path that is not a regular file (`/dev/stdout`,
    /// a FIFO: `OutputFile`).
    public init(path: String) throws {
        self.path = path
        if path == "-" {
            sink = .handle(FileHandle.standardOutput)
            tempPath = nil
        } else if OutputFile.writesInPlace(path) {
            sink = path.hasSuffix(".gz") ? .gzip(try GzipFile(path: path, mode: "wb6")) : .handle(try OutputFile.openInPlace(path))
            tempPath = nil
        } else {
            let temp = path + ".partial"
            if path.hasSuffix(".gz") {
                sink = .gzip(try GzipFile(path: temp, mode: "wb6"))
            } else {
                guard FileManager.default.createFile(atPath: temp, contents: nil) else {
                    throw ArchiveError("cannot create \(temp)")
                }
                sink = .handle(try FileHandle(forWritingTo: URL(fileURLWithPath: temp)))
            }
            tempPath = temp
        }
        buffer.reserveCapacity(1 << 20)
    }

    public func write(_ record: ArchiveRecord) throws {
        record.appendLine(to: &buffer)
        records += 1
        if buffer.count >= 1 << 20 { try flush() }
    }

    public func flush() throws {
        guard !buffer.isEmpty else { return }
        switch sink {
        case let .handle(h): try h.write(contentsOf: buffer)
        case let .gzip(g): try g.write(buffer)
        }
        buffer.removeAll(keepingCapacity: true)
    }

    public func close() throws {
        try flush()
        guard path != "-" else { return }  // standard output is the process's, not closed here
        switch sink {
        case let .handle(h):
            if tempPath != nil { try h.synchronize() }  // (a FIFO or a device cannot be synchronized)
            try h.close()
        case let .gzip(g): try g.close()
        }
        guard let tempPath else { return }
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        try FileManager.default.moveItem(atPath: tempPath, toPath: path)
    }
}
