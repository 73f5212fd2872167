/// Backpressure by holding reads: while paused, the channel's `read()` is kept back (so the
/// socket, or an HTTP/2 stream's flow-control window, fills and the peer stops), and issued
/// when reading resumes. For a handler with one reason to pause; ``HTTP1Connection`` has two.
///
/// It answers whether to read rather than reading itself: `context.read()` can come straight
/// back to the handler's `read(context:)`, which must not find the gate mid-change.
struct ReadGate {
    private(set) var isPaused = false
    private var readPending = false

    /// From the handler's `read(context:)`: whether to pass the read on now.
    mutating func admitsRead() -> Bool {
        if isPaused { readPending = true }
        return !isPaused
    }

    /// Whether a read held back is now to be issued.
    mutating func setPaused(_ paused: Bool) -> Bool {
        isPaused = paused
        guard !paused, readPending else { return false }
        readPending = false
        return true
    }
}
