import Foundation

/// Errors in words for people: Foundation's file errors (which print as `NSCocoaErrorDomain Code=512 "(null)"`)
/// become their POSIX reason ("not a directory", "permission denied"); the project's own errors keep their
/// one-line description.
public enum ErrorWords {
    public static func describe(_ error: any Error) -> String {
        let ns = error as NSError
        if ns.domain == NSPOSIXErrorDomain { return posix(Int32(ns.code)) }
        guard ns.domain == NSCocoaErrorDomain else { return "\(error)" }
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return posix(Int32(underlying.code))
        }
        switch ns.code {
        case NSFileNoSuchFileError, NSFileReadNoSuchFileError: return "no such file or directory"
        case NSFileReadNoPermissionError, NSFileWriteNoPermissionError: return "permission denied"
        case NSFileWriteOutOfSpaceError: return "no space left on device"
        case NSFileWriteVolumeReadOnlyError: return "read-only file system"
        case NSFileWriteFileExistsError: return "a file of that name is in the way"
        case NSFileReadCorruptFileError: return "the file is damaged"
        case NSFileWriteInvalidFileNameError, NSFileReadInvalidFileNameError: return "not a valid file name"
        default: return ns.localizedFailureReason ?? "cannot read or write it (file error \(ns.code))"
        }
    }

    static func posix(_ code: Int32) -> String { String(cString: strerror(code)).lowercased() }

    /// Whether `path` is, or can be created as, a writable directory: nil when it is, else the reason in words.
    /// Creates nothing (a command that stops for another reason leaves no trace).
    public static func directoryProblem(_ path: String) -> String? {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else { return "it is a file, not a directory" }
            return access(path, W_OK | X_OK) == 0 ? nil : posix(errno)
        }
        // Missing: it can be created if its nearest existing ancestor is a writable directory.
        var ancestor = URL(fileURLWithPath: path).deletingLastPathComponent()
        while ancestor.path != "/" && !FileManager.default.fileExists(atPath: ancestor.path) { ancestor = ancestor.deletingLastPathComponent() }
        _ = FileManager.default.fileExists(atPath: ancestor.path, isDirectory: &isDirectory)
        if !isDirectory.boolValue { return "\(ancestor.path) is not a directory" }
        return access(ancestor.path, W_OK | X_OK) == 0 ? nil : "\(ancestor.path): \(posix(errno))"
    }

    /// Whether a file can be created at `path` (its directory exists and is writable; the file, if present, is
    /// writable): nil when it can, else the reason in words. Creates nothing.
    public static func fileProblem(_ path: String) -> String? {
        let url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) {
            if isDirectory.boolValue { return "it is a directory" }
            return access(path, W_OK) == 0 ? nil : posix(errno)
        }
        let parent = url.deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: parent, isDirectory: &isDirectory) else { return "its directory \(parent) does not exist" }
        guard isDirectory.boolValue else { return "\(parent) is not a directory" }
        return access(parent, W_OK | X_OK) == 0 ? nil : "its directory \(parent): \(posix(errno))"
    }
}
