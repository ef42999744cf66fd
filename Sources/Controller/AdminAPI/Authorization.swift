import Shared

/// Which operator roles may make each admin call: least privilege and
/// separation of duties (NIST CSF 2.0 PR.AA-05). Reads are open to every
/// role; each change belongs to the role that owns it (docs/admin-api.md).
package enum Authorization {
    package static func roles(for op: AdminOperation) -> Set<OperatorRole> {
        switch op {
        case .deviceList, .deviceShow, .status, .classList, .vendorList, .exceptionList, .whoami, .registerExport, .findings, .report, .reviewShow,
             .campaignStatus, .campaignList, .caStatus:
            Set(OperatorRole.allCases)
        case .deviceAdd, .deviceApprove, .deviceUpdate, .deviceTransition, .deviceTransfer, .deviceReplace, .registerImport, .exceptionRequest,
             .campaignCreate, .campaignStart, .campaignPause, .campaignResume, .campaignCancel:
            [.ops]
        // Emergency revocation belongs to security architecture as well as operations.
        case .deviceRevoke, .deviceRevokeSelected: [.ops, .secarch]
        // Change management (ops) and incident response (secarch) post lifecycle events.
        case .eventPost: [.ops, .secarch]
        case .classSet: [.identity]
        // The PKI belongs to the identity team: rotating or retiring an issuing CA is theirs.
        case .caRotate, .caRetire: [.identity]
        case .vendorSet: [.procurement]
        case .exceptionDecide, .reviewAttest: [.business]
        // The identity team runs the periodic access review; business owners attest.
        case .reviewStart: [.identity]
        case .operatorAdd, .operatorRemove: [.admin]
        case .operatorList: [.admin, .auditor]
        case .auditVerify, .auditExport: [.auditor, .admin]
        }
    }

    /// Nil when allowed; otherwise the coded refusal.
    package static func check(_ op: AdminOperation, _ actor: AdminActor) -> WireError? {
        let allowed = roles(for: op)
        guard actor.roles.isDisjoint(with: allowed) else { return nil }
        return WireError(.forbidden, "\(op.rawValue) needs one of the roles \(allowed.map(\.rawValue).sorted().joined(separator: ", ")); "
                         + "\(actor.name) has \(actor.roles.map(\.rawValue).sorted().joined(separator: ", "))")
    }
}
