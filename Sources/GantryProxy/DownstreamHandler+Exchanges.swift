import NIOHTTP1

/// Requests reuse their loop's ended exchanges: allocated per request, exchanges were freed in
/// bursts (one per connection with a request in flight) larger than the allocator's per-size
/// cache, and allocating and freeing them cost more than setting one up again.
extension DownstreamHandler {
    /// The exchange for the request being started: a spare of the loop's that nothing else
    /// holds any more (a connection attempt or a policy check still under way may hold one,
    /// which is then let go), or a new one.
    func newExchange(plan: consuming ProxyPlan, method: HTTPMethod) -> ProxyExchange {
        while var spare = loop.spareExchanges.popLast() {
            guard isKnownUniquelyReferenced(&spare) else { continue }
            spare.restart(plan: plan, requestID: request.id, method: method, started: request.started, downstream: self)
            return spare
        }
        return ProxyExchange(plan: plan, requestID: request.id, method: method, started: request.started, loop: loop, downstream: self)
    }

    /// Gives an ended (and logged) exchange back to the loop, without the request's head.
    func keepForReuse(_ exchange: ProxyExchange) {
        exchange.letGoOfRequest()
        if loop.spareExchanges.count < LoopContext.maxSpareExchanges { loop.spareExchanges.append(exchange) }
    }
}
