/// Why an input message was not accepted. Goes to the dead-letter topic as the `dlq-reason` header,
/// written `code: detail`.
public struct Rejection: Error, Sendable, Hashable, CustomStringConvertible {
    public enum Code: String, Sendable, CaseIterable, Hashable {
        case tooLarge = "too_large"
        case invalidUTF8 = "invalid_utf8"
        case invalidJSON = "invalid_json"
        case notAnObject = "not_an_object"
        case repeatedKey = "repeated_key"
        case unsupportedSchema = "unsupported_schema"
        case unknownType = "unknown_type"
        case wrongTopic = "wrong_topic"
        case keyMismatch = "key_mismatch"
        case missingField = "missing_field"
        case wrongType = "wrong_type"
        case invalidValue = "invalid_value"
        case invalidTime = "invalid_time"
        case conflictingDuplicate = "conflicting_duplicate"
        /// A message without a key: state is kept per partition, so a customer's events must all carry the
        /// key that keeps them in one partition.
        case missingKey = "missing_key"
    }

    public var code: Code
    public var detail: String

    public init(_ code: Code, _ detail: String) {
        self.code = code
        self.detail = detail
    }

    public var description: String { "\(code.rawValue): \(detail)" }
}
