import BulwarkCore

/// How configuration and policy changes are approved and applied: the one approval
/// mechanism (SPEC.md §18.3, §19.3) and what executing an approval does.

/// Why an approval does not count.
enum AdminRefusal: Error {
    case notAnAdmin
    case badSignature
}

extension ClusterConfig {
    /// `admin`'s approval over `message`, if `admin` is one of this configuration's admins and
    /// `signature` is valid: the first two checks of every approval.
    func adminApproval(by admin: PublicKey, signature: Signature, over message: [UInt8]) -> Result<ConfigApproval, AdminRefusal> {
        guard let index = admins.firstIndex(of: admin) else { return .failure(.notAnAdmin) }
        guard admin.isValidSignature(signature, for: message) else { return .failure(.badSignature) }
        return .success(ConfigApproval(admin: UInt16(index), signature: signature))
    }
}

/// A proposal collecting admin approvals: a configuration change or policy edits.
protocol CollectsApprovals {
    var id: Digest { get }
    var approvals: [ConfigApproval] { get set }
}

extension Array where Element: CollectsApprovals {
    /// Records `approval` in the proposal with `id` (kept in increasing id order), made by
    /// `make` if there is none yet; an admin counts once. The proposal's index, or nil when a
    /// new proposal would take the list past `max`.
    mutating func record(_ approval: ConfigApproval, in id: Digest, max: Int, make: () -> Element) -> Int? {
        let position = firstIndex { $0.id >= id } ?? count
        if position == count || self[position].id != id {
            guard count < max else { return nil }
            insert(make(), at: position)
        }
        if !self[position].approvals.contains(where: { $0.admin == approval.admin }) {
            self[position].approvals.append(approval)
            self[position].approvals.sort { $0.admin < $1.admin }
        }
        return position
    }

    /// Records `approval` and says how far its proposal got against `config`'s threshold; nil
    /// when a new proposal would take the list past `max`.
    mutating func count<Subject>(_ approval: ConfigApproval, in id: Digest, max: Int, config: ClusterConfig,
                                 make: () -> Element) -> (position: Int, progress: ApprovalProgress<Subject>)? {
        guard let position = record(approval, in: id, max: max, make: make) else { return nil }
        return (position, ApprovalProgress(id: id, approvals: UInt16(self[position].approvals.count),
                                           threshold: UInt16(config.adminThreshold)))
    }
}

extension ConfigProposal: CollectsApprovals {}
extension PolicyProposal: CollectsApprovals {}

// MARK: - Execution

extension Governance {
    /// Applies one approval, at `height`. Verifies the admin's signature here: the ledger,
    /// not the client's word, decides what is approved.
    public mutating func apply(_ request: ConfigApprovalRequest, height: Height) -> OperationResult {
        guard request.config.clusterID == config.clusterID else { return .configRefused(.otherCluster) }
        guard request.epoch == epoch else { return .configRefused(.wrongEpoch(current: epoch)) }
        if let scheduled { return .configRefused(.changePending(lastHeight: scheduled.lastHeight)) }
        let message = Governance.approvalMessage(cluster: config.clusterID, epoch: epoch, configHash: request.config.hash)
        let approval: ConfigApproval
        switch config.adminApproval(by: request.admin, signature: request.signature, over: message) {
        case let .success(signed): approval = signed
        case .failure(.notAnAdmin): return .configRefused(.notAnAdmin)
        case .failure(.badSignature): return .configRefused(.badSignature)
        }
        let id = Digest.sha256(message)
        guard let (position, progress): (Int, ConfigProgress) = proposals.count(approval, in: id, max: Self.proposalsMax,
                                                                               config: config, make: {
            ConfigProposal(id: id, config: request.config, approvals: [])
        }) else { return .configRefused(.tooManyProposals(max: UInt64(Self.proposalsMax))) }
        guard progress.isComplete else { return .configApproved(progress) }
        let approvals = proposals[position].approvals
        guard let last = Governance.lastHeight(completedAt: height, parameters: config.parameters) else {
            proposals.remove(at: position)
            return .configRefused(.heightExhausted)
        }
        scheduled = ScheduledChange(id: id, lastHeight: last, config: request.config, approvals: approvals)
        // Competing proposals were approved against a configuration that is about to end.
        proposals = []
        return .configApproved(progress.completed(at: last))
    }

    /// After block `height` executed: ends the epoch when it was the scheduled last block.
    /// True when a new epoch begins.
    public mutating func endOfBlock(_ height: Height) -> Bool {
        // A decoded schedule is not trusted to leave room for the next epoch's first height.
        guard let scheduled, scheduled.lastHeight == height, height < .max, epochEnds.count < Self.epochsMax else { return false }
        epochEnds.append(height)
        epoch += 1
        config = scheduled.config
        firstHeight = height &+ 1
        proposals = []
        self.scheduled = nil
        return true
    }
}


extension Policy {
    /// Applies `edits` in order to a copy; the first that cannot apply refuses them all.
    func applying(_ edits: [PolicyEdit], keyBytesMax: Int) -> Result<Policy, PolicyRefusal> {
        guard !edits.isEmpty, edits.count <= Self.editsMax else { return .failure(.badEditCount(count: UInt64(edits.count))) }
        var next = self
        for (index, edit) in edits.enumerated() {
            if let problem = next.apply(edit, keyBytesMax: keyBytesMax) {
                return .failure(.badEdit(index: UInt32(index), problem))
            }
        }
        return .success(next)
    }

    private mutating func apply(_ edit: PolicyEdit, keyBytesMax: Int) -> PolicyRefusal.EditProblem? {
        switch edit {
        case let .grant(roleName, grant):
            guard Self.isValidName(roleName) else { return .invalidName }
            guard Self.isValidGrant(grant, keyBytesMax: keyBytesMax) else { return .invalidGrant }
            let position = roles.firstIndex { !Self.precedes($0.name, roleName) } ?? roles.count
            if position == roles.count || roles[position].name != roleName {
                guard roles.count < Self.rolesMax else { return .policyFull }
                roles.insert(Role(name: roleName, grants: []), at: position)
            }
            var grants = roles[position].grants
            guard !grants.contains(grant) else { return .alreadyGranted }
            guard grants.count < Self.grantsPerRoleMax else { return .policyFull }
            grants.append(grant)
            roles[position].grants = grants.sorted()
        case let .revoke(roleName, grant):
            guard let position = roles.firstIndex(where: { $0.name == roleName }),
                  let found = roles[position].grants.firstIndex(of: grant) else { return .notGranted }
            roles[position].grants.remove(at: found)
            if roles[position].grants.isEmpty { roles.remove(at: position) }
        case let .bind(binding):
            guard Self.isValidName(binding.name) else { return .invalidName }
            guard !binding.roles.isEmpty, binding.roles.count <= Self.rolesPerBindingMax,
                  binding.roles.allSatisfy(Self.isValidName),
                  zip(binding.roles, binding.roles.dropFirst()).allSatisfy({ Self.precedes($0, $1) }) else { return .invalidRoles }
            guard !bindings.contains(where: { $0.name == binding.name }) else { return .nameTaken }
            guard !bindings.contains(where: { $0.client == binding.client }) else { return .clientAlreadyBound }
            guard bindings.count < Self.bindingsMax else { return .policyFull }
            let position = bindings.firstIndex { !Self.precedes($0.name, binding.name) } ?? bindings.count
            bindings.insert(binding, at: position)
        case let .unbind(name):
            guard let position = bindings.firstIndex(where: { $0.name == name }) else { return .notBound }
            bindings.remove(at: position)
        }
        return nil
    }

    static func isValidGrant(_ grant: Grant, keyBytesMax: Int) -> Bool {
        if grant.permission == .admin { return grant.prefix.isEmpty }
        let segments = segments(of: grant.prefix)
        return grant.prefix.count <= keyBytesMax && segments.count <= placeholdersMax + 1 && delimitsEveryPlaceholder(segments)
    }

    /// Every `{client}` is followed by a byte no name contains (SPEC.md §19.1), so a name's
    /// expansion is never a prefix of a longer name's: without it `acct/{client}` gives client
    /// `al` every key of client `alice`. (A byte after a placeholder that starts another one is
    /// `{`, not a name byte, but the next segment is then empty: refused too.)
    static func delimitsEveryPlaceholder(_ segments: [[UInt8]]) -> Bool {
        segments.dropFirst().allSatisfy { segment in segment.first.map { !isNameByte($0) } ?? false }
    }

    /// Applies one approval. The caller checked the submitter may administer.
    public mutating func apply(_ request: PolicyApprovalRequest, epoch: UInt64, config: ClusterConfig,
                        keyBytesMax: Int) -> OperationResult {
        guard request.epoch == epoch else { return .policyRefused(.wrongEpoch(current: epoch)) }
        // A decoded sequence is not trusted to leave room for the next.
        guard request.sequence == sequence, sequence < .max else { return .policyRefused(.wrongSequence(current: sequence)) }
        let message = Self.approvalMessage(cluster: config.clusterID, epoch: epoch, sequence: sequence, edits: request.edits)
        let approval: ConfigApproval
        switch config.adminApproval(by: request.admin, signature: request.signature, over: message) {
        case let .success(signed): approval = signed
        case .failure(.notAnAdmin): return .policyRefused(.notAnAdmin)
        case .failure(.badSignature): return .policyRefused(.badSignature)
        }
        let next: Policy
        switch applying(request.edits, keyBytesMax: keyBytesMax) {
        case let .success(policy): next = policy
        case let .failure(refusal): return .policyRefused(refusal)
        }
        let id = Digest.sha256(message)
        guard let (_, progress): (Int, PolicyProgress) = proposals.count(approval, in: id, max: Self.proposalsMax, config: config, make: {
            PolicyProposal(id: id, edits: request.edits, approvals: [])
        }) else { return .policyRefused(.tooManyProposals(max: UInt64(Self.proposalsMax))) }
        guard progress.isComplete else { return .policyApproved(progress) }
        // Every other proposal was signed against the sequence this change ends.
        self = next
        sequence += 1
        proposals = []
        return .policyApproved(progress.completed(at: sequence))
    }
}
