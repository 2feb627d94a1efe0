import BulwarkCore
import BulwarkStateMachine

/// Checks what clients saw, not what replicas hold (ARCHITECTURE.md §7):
/// - linearizability of every single-key history (Wing & Gong's search: find an order of the
///   operations that respects real time — an operation that completed before another was
///   invoked comes first — and that a sequential key-value store would answer the same way);
/// - the bank invariant: transfers never change the total of the accounts, deposits change it
///   by exactly what they added, and no balance, in the ledger or in a read, is negative.
struct HistoryChecker {
    let simulation: Simulation
    /// The longest honest ledger.
    let longest: [LedgerEntry]

    func fail(_ message: String) { simulation.report.failures.append(message) }

    func check() {
        checkLinearizability()
        checkBank()
        checkFastReads()
    }

    // MARK: Fast reads

    /// Every read a client accepted without ordering (SPEC.md §8.6) gave exactly what the
    /// ledger's state at the height it names gives that client for that key (the ledger
    /// replayed once, the reads taken in height order). Linearizability judges when.
    func checkFastReads() {
        var reads: [(height: Height, done: CompletedOperation)] = []
        for client in simulation.clients {
            for done in client.completed { if let height = done.fastReadHeight { reads.append((height, done)) } }
        }
        guard !reads.isEmpty else { return }
        reads.sort { $0.height < $1.height }
        var state = KeyValueState(genesis: simulation.config)
        var entries = longest[...]
        for (height, done) in reads {
            guard height <= UInt64(longest.count) else {
                return fail("fast read: a client accepted an answer at height \(height), past the ledger's \(longest.count)")
            }
            while state.height < height, let entry = entries.popFirst() { _ = try! state.execute(entry.block) }
            guard case let .get(key) = done.request.operation,
                  state.readWithoutOrdering(key, client: done.request.client).encoded() == done.result else {
                return fail("fast read: a client accepted a result at height \(height) that the ledger's state there does not give")
            }
        }
    }

    // MARK: Linearizability

    struct Operation {
        var operation: LedgerOperation
        var result: OperationResult
        var invokedMs: UInt64
        var completedMs: UInt64
    }

    /// A key's state in the sequential model: its value and version (0 when absent).
    struct KeyState: Hashable {
        var value: [UInt8]?
        var version: UInt64
    }

    func checkLinearizability() {
        // Keys that transactions or balance updates touch are left to the bank check.
        var histories: [[UInt8]: [Operation]] = [:]
        var multiKey: Set<[UInt8]> = []
        for client in simulation.clients {
            for done in client.completed {
                guard let result = try? OperationResult(decoding: done.result) else {
                    return fail("history: client \(client.index) accepted an undecodable result")
                }
                switch done.request.operation {
                case let .txn(_, writes):
                    for write in writes {
                        switch write {
                        case let .put(key, _), let .delete(key), let .add(key, _, _, _): multiKey.insert(key)
                        }
                    }
                case let .add(key, _, _, _): multiKey.insert(key)
                case .range, .history, .approveConfig, .governance, .approvePolicy, .policy: continue
                case let .put(key, _), let .delete(key), let .cas(key, _, _), let .get(key):
                    histories[key, default: []].append(Operation(operation: done.request.operation, result: result,
                                                                 invokedMs: done.invokedMs, completedMs: done.completedMs))
                }
            }
        }
        for key in histories.keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) where !multiKey.contains(key) {
            let operations = histories[key]!.sorted { ($0.invokedMs, $0.completedMs) < ($1.invokedMs, $1.completedMs) }
            simulation.report.linearizableOperations += operations.count
            if !Self.isLinearizable(operations) {
                return fail("linearizability: the \(operations.count) operations on key \(String(decoding: key, as: UTF8.self)) have no legal sequential order")
            }
        }
    }

    /// What the sequential store does for `operation` in `state` if it answered `result`:
    /// the next state, or nil if it could not have answered that. Versions are block heights,
    /// which the model cannot predict, so a write's reported version is taken as the new one
    /// as long as versions never go backwards.
    static func apply(_ operation: LedgerOperation, _ result: OperationResult, to state: KeyState) -> KeyState? {
        if case .rejected = result { return state }
        if case .permissionDenied = result { return state }
        switch (operation, result) {
        case let (.put(_, value), .written(version)):
            return version >= state.version ? KeyState(value: value, version: version) : nil
        case let (.delete, .deleted(existed)):
            return existed == (state.value != nil) ? KeyState(value: nil, version: 0) : nil
        case let (.cas(_, expected, value), .written(version)):
            return state.version == expected && version >= state.version ? KeyState(value: value, version: version) : nil
        case let (.cas(_, expected, _), .conditionFailed):
            return state.version != expected ? state : nil
        case let (.get, .value(value, version)):
            return value == state.value && version == state.version ? state : nil
        default:
            return nil
        }
    }

    /// Depth-first search over the operations that may come next (none completed before
    /// another unplaced one was invoked), remembering (placed set, state) pairs already ruled out.
    static func isLinearizable(_ operations: [Operation]) -> Bool {
        var placed = [Bool](repeating: false, count: operations.count)
        var deadStates: [[Bool]: Set<KeyState>] = [:]
        var budget = 2_000_000

        func search(_ state: KeyState, _ remaining: Int) -> Bool {
            if remaining == 0 { return true }
            budget -= 1
            if budget <= 0 { return true }  // bounded: give up as "not refuted" rather than hang
            if deadStates[placed]?.contains(state) == true { return false }
            // Every unplaced operation invoked before the earliest unplaced completion is a candidate.
            var earliestCompletion = UInt64.max
            for (i, op) in operations.enumerated() where !placed[i] { earliestCompletion = min(earliestCompletion, op.completedMs) }
            for (i, op) in operations.enumerated() where !placed[i] && op.invokedMs <= earliestCompletion {
                guard let next = apply(op.operation, op.result, to: state) else { continue }
                placed[i] = true
                if search(next, remaining - 1) { return true }
                placed[i] = false
            }
            deadStates[placed, default: []].insert(state)
            return false
        }
        return search(KeyState(value: nil, version: 0), operations.count)
    }

    // MARK: Bank

    func checkBank() {
        let ledger = longest
        let accounts = (0..<UInt64(3)).map(SimClient.account)
        var state = KeyValueState(genesis: simulation.config)
        func balances() -> [Int64] {
            accounts.map { state.read($0).flatMap { KeyValueState.decodeBalance($0.value) } ?? 0 }
        }
        var total: Int64 = 0
        for entry in ledger {
            let outcomes = try! state.execute(entry.block)
            var deposited: Int64 = 0
            for (request, outcome) in zip(entry.block.requests, outcomes) {
                if case let .add(key, delta, _, _) = request.operation, accounts.contains(key),
                   case .executed(.balance) = outcome {
                    deposited += delta
                }
            }
            let now = balances()
            if let negative = now.firstIndex(where: { $0 < 0 }) {
                return fail("bank: account \(negative) is negative (\(now[negative])) after height \(entry.block.height)")
            }
            let sum = now.reduce(0, +)
            if sum != total + deposited {
                return fail("bank: the total went from \(total) to \(sum) at height \(entry.block.height) with \(deposited) deposited")
            }
            total = sum
        }
        for client in simulation.clients {
            for done in client.completed {
                guard case let .get(key) = done.request.operation, accounts.contains(key),
                      case let .value(value?, _)? = try? OperationResult(decoding: done.result) else { continue }
                if let balance = KeyValueState.decodeBalance(value), balance < 0 {
                    return fail("bank: client \(client.index) read a negative balance \(balance)")
                }
            }
        }
    }
}
