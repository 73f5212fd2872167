/// A value in Redis' protocol (RESP2): what a command answers.
public enum RedisValue: Sendable, Equatable {
    case simple(String)
    case error(String)
    case integer(Int)
    case bulk(String?)
    case array([RedisValue])
}
