/// What every error that Godwit's libraries throw for a person to act on has in common, as
/// Hummingbird's `HTTPResponseError` is for responses: a `code` that a caller can react to
/// without reading the message, and a `description` that is the one line a person reads, naming
/// the file, line, job or version concerned. The CLI catches `any GodwitError` once and prints
/// that line.
public protocol GodwitError: Error, Sendable, CustomStringConvertible {
    associatedtype Code: Hashable, Sendable, CustomStringConvertible
    /// What kind of failure this is, independent of the message text.
    var code: Code { get }
}
