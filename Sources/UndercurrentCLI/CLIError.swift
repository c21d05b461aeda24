/// A one-line error for the user: printed as `Error: <description>`, exit status 1.
public struct CLIError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
