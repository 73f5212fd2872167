import NIOCore

extension ChannelHandlerContext {
    /// Turns the channel's reading on or off with its `autoRead` option.
    ///
    /// The handlers pause reading this way, rather than by holding back each `read()` on its
    /// way to the socket: intercepting `read()` put them on the pipeline's outbound path, one
    /// more hop for every read of every request, to act on the rare read that comes while
    /// paused. Off, NIO stops asking the socket for reads; on again, it reads at once.
    func setReading(_ on: Bool) {
        if let options = channel.syncOptions {
            try? options.setOption(ChannelOptions.autoRead, value: on)
        } else {
            channel.setOption(ChannelOptions.autoRead, value: on).whenFailure { _ in }
        }
    }
}
