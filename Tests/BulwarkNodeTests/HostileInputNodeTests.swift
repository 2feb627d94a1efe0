@testable import BulwarkNode
import BulwarkCore
import Testing

/// The node's handling of what a peer chose, checked before any arithmetic.
@Suite struct HostileInputNodeTests {
    /// Found in Bulwark: `fetchBlocks(from: 2^64−1, to: 2^64−1)` overflowed `from + 127` in the
    /// node's state-transfer server; sent to every honest replica it took the cluster down.
    @Test func aStateTransferRequestServesOnlyWhatTheLedgerHolds() {
        let max = Height.max
        #expect(ReplicaNode.transferRange(from: max, to: max, ledgerHeight: 10) == nil)
        #expect(ReplicaNode.transferRange(from: max - 1, to: max, ledgerHeight: max - 1) == (max - 1)...(max - 1))
        #expect(ReplicaNode.transferRange(from: 0, to: 5, ledgerHeight: 10) == nil)
        #expect(ReplicaNode.transferRange(from: 6, to: 5, ledgerHeight: 10) == nil)
        #expect(ReplicaNode.transferRange(from: 11, to: 20, ledgerHeight: 10) == nil)
        #expect(ReplicaNode.transferRange(from: 3, to: max, ledgerHeight: 10) == 3...10)
        #expect(ReplicaNode.transferRange(from: 1, to: max, ledgerHeight: 1_000)?.count == ReplicaNode.transferBlocksMax)
    }
}
