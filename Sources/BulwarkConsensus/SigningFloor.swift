import BulwarkCore

/// What a replica that lost its disk must not sign (SPEC.md §14.4): it may have signed anything
/// at these heights and views before the loss, and no longer knows what. Learned from a quorum
/// of peers when it rejoins: the highest epoch, view and ledger height any of them reported,
/// with the watermark window added to the height (the old life signed nothing above its own
/// stable checkpoint plus the window, and a quorum's highest height is at or above that
/// checkpoint).
public struct SigningFloor: Hashable, Sendable, CustomStringConvertible {
    /// The epoch whose views are barred; views of later epochs are not.
    public var epoch: UInt64
    /// No PRE-PREPARE, PREPARE or COMMIT in a view at or below this one (of `epoch`), and no
    /// VIEW-CHANGE for a view at or below the one after it.
    public var view: View
    /// Nothing at a height at or below this one; no VIEW-CHANGE until the stable checkpoint
    /// reaches it.
    public var height: Height

    public init(epoch: UInt64, view: View, height: Height) {
        self.epoch = epoch
        self.view = view
        self.height = height
    }

    /// Everything: recorded the moment a rejoin begins, until a quorum's answers replace it, so
    /// that a replica restarted in between (with or without `--rejoin`) still signs nothing.
    public static let unknown = SigningFloor(epoch: .max, view: .max, height: ProtocolBounds.heightMax)
    public var isUnknown: Bool { self == .unknown }

    /// The higher of the two in each part: floors are raised, never lowered.
    public func raised(to other: SigningFloor) -> SigningFloor {
        let (epoch, view) = (other.epoch, other.view) > (self.epoch, self.view) ? (other.epoch, other.view) : (self.epoch, self.view)
        return SigningFloor(epoch: epoch, view: view, height: max(height, other.height))
    }

    public var description: String { isUnknown ? "unknown (asking the peers)" : "height \(height), view \(view) of epoch \(epoch)" }

    /// Views of `epoch` above which normal-case messages may be signed.
    func permitsNormalCase(epoch: UInt64, view: View, height: Height) -> Bool {
        height > self.height && (epoch > self.epoch || view > self.view)
    }

    /// A VIEW-CHANGE for `target`: the old life may have asked alone for the view after the
    /// highest one a quorum reported, so that one is barred too, and the stable checkpoint the
    /// message carries must cover every height the old life may have prepared (a VIEW-CHANGE
    /// that forgot one of those would count as an honest replica that never prepared it).
    func permitsViewChange(epoch: UInt64, target: View, stable: Height) -> Bool {
        stable >= height && (epoch > self.epoch || (self.view < View.max && target > self.view + 1))
    }
}

extension Replica {
    /// The floor while it still holds anything back from the current view: nil once this
    /// replica signs normally again.
    public var rejoining: SigningFloor? {
        guard let floor = signingFloor,
              !floor.permitsNormalCase(epoch: epoch, view: view, height: chain.height) || lowWatermark < floor.height
        else { return nil }
        return floor
    }

    /// May this replica sign a PRE-PREPARE, PREPARE or COMMIT at `height` in the current view?
    func maySign(height: Height) -> Bool {
        height > forgottenThrough && signingFloor?.permitsNormalCase(epoch: epoch, view: view, height: height) ?? true
    }

    /// May it sign a CHECKPOINT at `height`?
    func maySignCheckpoint(height: Height) -> Bool { height > signingFloor?.height ?? 0 }

    /// May it sign a VIEW-CHANGE for `target`?
    func maySignViewChange(to target: View) -> Bool {
        lowWatermark >= forgottenThrough && signingFloor?.permitsViewChange(epoch: epoch, target: target, stable: lowWatermark) ?? true
    }

    /// Holds signing back below `floor`, replacing any earlier floor: a rejoining replica learns
    /// its floor before it starts (the shell records it in the write-ahead log first).
    public mutating func setSigningFloor(_ floor: SigningFloor) { signingFloor = floor }
}
