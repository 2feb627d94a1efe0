@testable import BulwarkNode
import BulwarkShell
import Dispatch
import NIOConcurrencyHelpers
import NIOPosix
import Testing

/// Issue 29 item 7: the replica's serving work (proofs and blocks read off the loop) had one
/// 16-slot queue shared by every client key and the peers' state transfer, so any key could
/// starve a lagging replica's catch-up. Peers now have capacity of their own.
@Suite struct ReplicaNodeServingTests {
    @Test func clientsCannotTakeThePeersServingCapacity() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let io = NodeIO(loop: group.next())
        let blocked = DispatchSemaphore(value: 0)
        // Clients fill their queue with work that does not finish.
        for _ in 0..<NodeIO.servingPendingMax[.client]! {
            #expect(io.serve(.client) { blocked.wait() })
        }
        #expect(!io.serve(.client) {}, "a client's work beyond the bound was taken")
        // A peer's state transfer is still served, and at once.
        let served = NIOLockedValueBox(false)
        #expect(io.serve(.peer) { served.withLockedValue { $0 = true } })
        var done = false
        for _ in 0..<500 where !done {
            done = served.withLockedValue { $0 }
            if !done { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(done, "a peer's work waited behind the clients'")
        for _ in 0..<NodeIO.servingPendingMax[.client]! { blocked.signal() }
        try await group.shutdownGracefully()
    }
}
