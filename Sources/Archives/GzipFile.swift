import CZlib
import Foundation

/// A file read or written through zlib's gzip functions. Reading also accepts plain (uncompressed)
/// files, so one reader serves `.ndjson` and `.ndjson.gz` archives.
public final class GzipFile {
    public let path: String
    private var file: gzFile?
    /// Set when reading reached the end of the file in the middle of a gzip stream (a truncated file).
    public private(set) var endedEarly = false

    /// `mode` as zlib's gzopen: "rb", or "wb6" (write, compression level 6).
    public init(path: String, mode: String) throws {
        self.path = path
        guard let f = gzopen(path, mode) else { throw ArchiveError("cannot open \(path)") }
        file = f
    }

    /// Standard input, read (plain or gzip) from where it is; named `path` in messages.
    public init(readingStandardInputAs path: String) throws {
        self.path = path
        guard let f = gzdopen(dup(0), "rb") else { throw ArchiveError("cannot read \(path)") }
        file = f
    }

    deinit { if let file { gzclose(file) } }

    /// Appends up to `max` decompressed bytes to `buffer`; returns how many (0 at the end of the file).
    public func read(into buffer: inout [UInt8], max: Int) throws -> Int {
        guard let file, max > 0 else { return 0 }
        // Straight into the buffer's new tail (no second buffer to copy from), then cut to what was read.
        let start = buffer.count
        buffer.append(contentsOf: repeatElement(0, count: max))
        let n = buffer.withUnsafeMutableBufferPointer { gzread(file, $0.baseAddress! + start, UInt32(max)) }
        buffer.removeLast(max - Int(Swift.max(n, 0)))
        if n < 0 { throw ArchiveError(lastError(file) ?? "corrupt compressed data") }
        if n == 0 {
            // zlib: Z_BUF_ERROR at the end means the input ended inside a gzip stream (before its CRC and length).
            var code: Int32 = 0
            _ = gzerror(file, &code)
            if code == Z_BUF_ERROR { endedEarly = true }
        }
        return Int(n)
    }

    /// How far into the file reading has gone, in the file's own (compressed) bytes: with the file's size,
    /// how much of an archive is read.
    public var fileOffset: Int64 {
        guard let file else { return 0 }
        return Int64(gzoffset(file))
    }

    public func write(_ bytes: [UInt8]) throws {
        guard let file, !bytes.isEmpty else { return }
        var bytes = bytes
        let n = gzwrite(file, &bytes, UInt32(bytes.count))
        if n != Int32(bytes.count) { throw ArchiveError("writing \(path): \(lastError(file) ?? "write failed")") }
    }

    @discardableResult
    public func close() throws -> Bool {
        guard let f = file else { return true }
        file = nil
        let rc = gzclose(f)
        if rc == Z_ERRNO { throw ArchiveError("cannot write \(path): \(String(cString: strerror(errno)).lowercased())") }
        if rc != Z_OK && rc != Z_BUF_ERROR { throw ArchiveError("closing \(path): zlib error \(rc)") }
        return true
    }

    private func lastError(_ f: gzFile) -> String? {
        var code: Int32 = 0
        guard let msg = gzerror(f, &code), code != Z_OK else { return nil }
        return String(cString: msg)
    }
}
