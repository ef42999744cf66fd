#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// Admin API types of the governed register: inventory fields, lifecycle
// transitions, class policy, vendors, exceptions, operators, CSV.

/// Inventory fields of a device. Every field is optional; `nil` in an update leaves it unchanged.
package struct DeviceAttributes: Codable, Sendable, Equatable {
    package var vendor: String?
    package var model: String?
    package var hardwareSerial: String?
    package var firmware: String?
    package var site: String?
    /// `it` or `ot`.
    package var zone: String?
    package var tags: [String]?
    /// How the device proves itself at enrollment: `token` (one-time token) or `idevid` (factory certificate).
    package var bootstrapMethod: String?

    package init(vendor: String? = nil, model: String? = nil, hardwareSerial: String? = nil, firmware: String? = nil, site: String? = nil,
                 zone: String? = nil, tags: [String]? = nil, bootstrapMethod: String? = nil) {
        self.vendor = vendor
        self.model = model
        self.hardwareSerial = hardwareSerial
        self.firmware = firmware
        self.site = site
        self.zone = zone
        self.tags = tags
        self.bootstrapMethod = bootstrapMethod
    }
}

package struct DeviceUpdateParams: Codable, Sendable {
    package var id: String
    package var attributes: DeviceAttributes
    package var reason: String?
    package init(id: String, attributes: DeviceAttributes, reason: String? = nil) {
        self.id = id
        self.attributes = attributes
        self.reason = reason
    }
}

/// `suspend`, `resume` or `retire` (approve, enroll and revoke have their own calls).
package struct DeviceTransitionParams: Codable, Sendable {
    package var id: String
    package var event: String
    package var reason: String?
    package init(id: String, event: String, reason: String? = nil) {
        self.id = id
        self.event = event
        self.reason = reason
    }
}

/// New owners for the given roles; roles not named keep their owner.
package struct DeviceTransferParams: Codable, Sendable {
    package var id: String
    package var owners: [String: String]
    package var reason: String?
    package init(id: String, owners: [String: String], reason: String? = nil) {
        self.id = id
        self.owners = owners
        self.reason = reason
    }
}

/// The old device is revoked if needed and retired; the new one (registered
/// or approved) is linked to it.
package struct DeviceReplaceParams: Codable, Sendable {
    package var id: String
    package var replacement: String
    package var reason: String?
    package init(id: String, replacement: String, reason: String? = nil) {
        self.id = id
        self.replacement = replacement
        self.reason = reason
    }
}

/// A device class's policy as the API carries it (durations in seconds).
package struct ClassPolicyView: Codable, Sendable, Equatable {
    package var name: String
    package var version: Int?
    package var ttl: Int64
    package var maxTTL: Int64
    package var renewAt: Double
    package var requiredOwners: [String]
    package var keyAlgorithms: [String]
    package var rotateKeys: Bool
    package var bootstrapMethods: [String]
    /// A renewal must have happened this long before notAfter.
    package var renewalSLA: Int64
    /// Time from the revocation order to the CRL the broker enforces.
    package var revocationSLA: Int64
    /// How long a device may go unseen.
    package var offlineTolerance: Int64
    package var reenrollAfterExpiry: Bool
    /// Seconds after notAfter a re-enrollment proof is accepted (absent in policies recorded before it existed: 7 d).
    package var reenrollWindow: Int64?
    /// The longest an exception for this class may last.
    package var exceptionMaxDuration: Int64
    /// A revoked device may be approved again (nil in policies recorded before it existed: no).
    package var reapproveAfterRevocation: Bool?
    package var recordedAt: Int64?
    package var recordedBy: String?

    package init(name: String, version: Int? = nil, ttl: Int64, maxTTL: Int64, renewAt: Double, requiredOwners: [String], keyAlgorithms: [String],
                 rotateKeys: Bool, bootstrapMethods: [String], renewalSLA: Int64, revocationSLA: Int64, offlineTolerance: Int64,
                 reenrollAfterExpiry: Bool, exceptionMaxDuration: Int64) {
        self.name = name
        self.version = version
        self.ttl = ttl
        self.maxTTL = maxTTL
        self.renewAt = renewAt
        self.requiredOwners = requiredOwners
        self.keyAlgorithms = keyAlgorithms
        self.rotateKeys = rotateKeys
        self.bootstrapMethods = bootstrapMethods
        self.renewalSLA = renewalSLA
        self.revocationSLA = revocationSLA
        self.offlineTolerance = offlineTolerance
        self.reenrollAfterExpiry = reenrollAfterExpiry
        self.exceptionMaxDuration = exceptionMaxDuration
    }
}

package struct ClassListResult: Codable, Sendable {
    package var classes: [ClassPolicyView]
    package init(classes: [ClassPolicyView]) { self.classes = classes }
}

package struct ClassSetParams: Codable, Sendable {
    package var policy: ClassPolicyView
    package var reason: String?
    package init(policy: ClassPolicyView, reason: String? = nil) {
        self.policy = policy
        self.reason = reason
    }
}

package struct VendorView: Codable, Sendable, Equatable {
    package var name: String
    /// Unix seconds; nil when unknown.
    package var supportEnd: Int64?
    package var vendorManaged: Bool
    /// Contract clauses on identity: issuance, rotation, revocation channel.
    package var clauseIssuance: Bool
    package var clauseRotation: Bool
    package var clauseRevocation: Bool
    package var hasIdentityClauses: Bool { clauseIssuance && clauseRotation && clauseRevocation }

    package init(name: String, supportEnd: Int64? = nil, vendorManaged: Bool = false, clauseIssuance: Bool = false, clauseRotation: Bool = false,
                 clauseRevocation: Bool = false) {
        self.name = name
        self.supportEnd = supportEnd
        self.vendorManaged = vendorManaged
        self.clauseIssuance = clauseIssuance
        self.clauseRotation = clauseRotation
        self.clauseRevocation = clauseRevocation
    }
}

package struct VendorListResult: Codable, Sendable {
    package var vendors: [VendorView]
    package init(vendors: [VendorView]) { self.vendors = vendors }
}

package struct ExceptionRequestParams: Codable, Sendable {
    /// A device id, or nil with a selector.
    package var device: String?
    /// `class=NAME`, `site=NAME` or `tag=NAME`.
    package var selector: String?
    /// `key_reuse` (renewal may keep the key) or `ttl_above_max` (with `ttl`).
    package var control: String
    package var ttl: Int64?
    package var justification: String
    package var compensatingControls: String
    /// Unix seconds.
    package var expiresAt: Int64

    package init(device: String?, selector: String? = nil, control: String, ttl: Int64? = nil, justification: String, compensatingControls: String,
                 expiresAt: Int64) {
        self.device = device
        self.selector = selector
        self.control = control
        self.ttl = ttl
        self.justification = justification
        self.compensatingControls = compensatingControls
        self.expiresAt = expiresAt
    }
}

package struct ExceptionDecideParams: Codable, Sendable {
    package var id: Int64
    /// `approve` or `reject`.
    package var decision: String
    package var reason: String?
    package init(id: Int64, decision: String, reason: String? = nil) {
        self.id = id
        self.decision = decision
        self.reason = reason
    }
}

package struct ExceptionView: Codable, Sendable, Equatable {
    package var id: Int64
    package var device: String?
    package var selector: String?
    package var control: String
    package var ttl: Int64?
    package var justification: String
    package var compensatingControls: String
    package var expiresAt: Int64
    package var requestedBy: String
    package var requestedAt: Int64
    /// pending, approved, rejected; `expired` is shown for an approved one past its expiry.
    package var status: String
    package var decidedBy: String?
    package var decidedAt: Int64?

    package init(id: Int64, device: String?, selector: String?, control: String, ttl: Int64?, justification: String, compensatingControls: String,
                 expiresAt: Int64, requestedBy: String, requestedAt: Int64, status: String, decidedBy: String?, decidedAt: Int64?) {
        self.id = id
        self.device = device
        self.selector = selector
        self.control = control
        self.ttl = ttl
        self.justification = justification
        self.compensatingControls = compensatingControls
        self.expiresAt = expiresAt
        self.requestedBy = requestedBy
        self.requestedAt = requestedAt
        self.status = status
        self.decidedBy = decidedBy
        self.decidedAt = decidedAt
    }
}

package struct ExceptionListResult: Codable, Sendable {
    package var exceptions: [ExceptionView]
    package init(exceptions: [ExceptionView]) { self.exceptions = exceptions }
}

/// Operator roles for the admin API (owner roles plus auditor and admin).
package enum OperatorRole: String, Codable, Sendable, CaseIterable {
    case identity, secarch, ops, procurement, business, auditor, admin
}

package struct OperatorAddParams: Codable, Sendable {
    /// The operator's name; for the business role, the owner name devices list.
    package var name: String
    package var roles: [String]
    package init(name: String, roles: [String]) {
        self.name = name
        self.roles = roles
    }
}

package struct OperatorView: Codable, Sendable, Equatable {
    package var name: String
    package var roles: [String]
    package var createdAt: Int64
    package var createdBy: String
    package init(name: String, roles: [String], createdAt: Int64, createdBy: String) {
        self.name = name
        self.roles = roles
        self.createdAt = createdAt
        self.createdBy = createdBy
    }
}

/// Returned once when an operator is created; the controller keeps only the token's SHA-256.
package struct OperatorCreated: Codable, Sendable {
    package var operatorInfo: OperatorView
    package var token: String
    package init(operatorInfo: OperatorView, token: String) {
        self.operatorInfo = operatorInfo
        self.token = token
    }
}

/// Offboarding an operator: the token stops working at once.
package struct OperatorRef: Codable, Sendable {
    package var name: String
    package var reason: String?
    package init(name: String, reason: String? = nil) {
        self.name = name
        self.reason = reason
    }
}

package struct OperatorListResult: Codable, Sendable {
    package var operators: [OperatorView]
    package init(operators: [OperatorView]) { self.operators = operators }
}

package struct WhoAmI: Codable, Sendable {
    package var name: String
    package var roles: [String]
    package init(name: String, roles: [String]) {
        self.name = name
        self.roles = roles
    }
}

package struct CSVImportParams: Codable, Sendable {
    package var csv: String
    /// Validate only; apply nothing.
    package var dryRun: Bool
    package init(csv: String, dryRun: Bool = false) {
        self.csv = csv
        self.dryRun = dryRun
    }
}

package struct CSVRowProblem: Codable, Sendable, Equatable {
    /// 1-based line in the file (the header is line 1).
    package var line: Int
    package var message: String
    package init(line: Int, message: String) {
        self.line = line
        self.message = message
    }
}

package struct CSVImportResult: Codable, Sendable {
    package var applied: Bool
    package var created: Int
    package var updated: Int
    package var problems: [CSVRowProblem]
    package init(applied: Bool, created: Int, updated: Int, problems: [CSVRowProblem]) {
        self.applied = applied
        self.created = created
        self.updated = updated
        self.problems = problems
    }
}

package struct CSVExport: Codable, Sendable {
    package var csv: String
    package init(csv: String) { self.csv = csv }
}

extension ClassPolicyView {
    package func with(reenrollWindow seconds: Int64, reapproveAfterRevocation: Bool = false) -> ClassPolicyView {
        var copy = self
        copy.reenrollWindow = seconds
        copy.reapproveAfterRevocation = reapproveAfterRevocation
        return copy
    }
}
