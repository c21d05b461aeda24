/// Something a stream needs before it sends or records anything and cannot have: a topic the cluster lacks, a
/// cluster that does not answer when its topics are listed, a simulated business that cannot be built. One line
/// for the user; the executables exit with status 2 (could not start).
public struct StreamSetupError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
