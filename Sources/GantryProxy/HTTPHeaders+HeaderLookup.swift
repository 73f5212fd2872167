import GantryCore
import NIOHTTP1

extension HTTPHeaders: HeaderLookup {}

extension HTTPHeaders {
    /// Adds fields that gantry names itself: lowercase ASCII literals, never `connection`.
    /// `add(name:value:)` scans each name for non-ASCII bytes and compares it with
    /// `connection` on every call; on the proxy's hot path those checks cost more than
    /// the append, so fields whose names are known good are added as one block instead.
    mutating func addOwn(_ fields: [(String, String)]) {
        add(contentsOf: HTTPHeaders(fields))
    }
}
