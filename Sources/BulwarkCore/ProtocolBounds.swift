/// The ranges every height, view and count received from a peer, a client or a file must fall
/// in before the replica does any arithmetic with it (PITFALLS: arithmetic on received
/// integers). Swift traps on overflow, so one unchecked `height - 1` or `from + n` on a
/// hostile value crashes every replica that receives it.
public enum ProtocolBounds {
    /// No ledger reaches 2^62 blocks (at a million blocks a second that is 146,000 years).
    /// Keeping received heights at or below it leaves room for every `+ window` and `+ 1` the
    /// protocol does with them.
    public static let heightMax: Height = 1 << 62
    /// Views likewise: a view change at most every millisecond would take 146 million years.
    public static let viewMax: View = 1 << 62
    /// A message for a view this far ahead of the receiver's own is dropped: honest replicas
    /// move one view per timeout, so no honest message is ever that far ahead.
    public static let viewsAheadMax: View = 1 << 32
    /// The largest watermark window (PBFT's log size L) a configuration may set: it bounds the
    /// heights one view-change or new-view message carries.
    public static let watermarkWindowMax: UInt64 = 4096

    public static func isHeight(_ height: Height) -> Bool { height >= 1 && height <= heightMax }
    public static func isView(_ view: View) -> Bool { view <= viewMax }
}
