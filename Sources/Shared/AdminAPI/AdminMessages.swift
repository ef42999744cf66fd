#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The admin API between `lanyardctl` and the controller. Types live here so
/// the CLI never reaches into controller internals.
package enum AdminOperation: String, Codable, Sendable, CaseIterable {
    case deviceAdd = "device.add"
    case deviceApprove = "device.approve"
    case deviceList = "device.list"
    case deviceShow = "device.show"
    case deviceRevoke = "device.revoke"
    /// Every device a selector matches (e.g. `vendor=acme`), in one CRL and one reload.
    case deviceRevokeSelected = "device.revoke-selected"
    case status = "status"
    case auditVerify = "audit.verify"
    case auditExport = "audit.export"
    // The governed register (issue 4).
    case deviceUpdate = "device.update"
    case deviceTransition = "device.transition"
    case deviceTransfer = "device.transfer"
    case deviceReplace = "device.replace"
    case classList = "class.list"
    case classSet = "class.set"
    case vendorList = "vendor.list"
    case vendorSet = "vendor.set"
    case exceptionRequest = "exception.request"
    case exceptionDecide = "exception.decide"
    case exceptionList = "exception.list"
    case operatorAdd = "operator.add"
    case operatorList = "operator.list"
    case operatorRemove = "operator.remove"
    case whoami = "operator.whoami"
    case registerImport = "register.import"
    case registerExport = "register.export"
    // Evidence.
    case findings = "findings.list"
    case report = "report.evidence"
    case reviewStart = "review.start"
    case reviewAttest = "review.attest"
    case reviewShow = "review.show"
    // Rotation campaigns (issue 5).
    case campaignCreate = "campaign.create"
    case campaignStart = "campaign.start"
    case campaignPause = "campaign.pause"
    case campaignResume = "campaign.resume"
    case campaignCancel = "campaign.cancel"
    case campaignStatus = "campaign.status"
    case campaignList = "campaign.list"
    /// A lifecycle event: a campaign, a revocation or a retirement (issue 5).
    case eventPost = "event.post"
    /// Rotation of the issuing CA (issue 5, docs/ca-rotation.md).
    case caRotate = "ca.rotate"
    case caStatus = "ca.status"
    case caRetire = "ca.retire"
}

package struct AdminRequest: Codable, Sendable {
    package var v: Int? = protocolVersion
    package var op: AdminOperation
    /// JSON of the operation's parameter struct.
    package var params: Data

    package init<P: Encodable>(_ op: AdminOperation, _ params: P) {
        self.op = op
        self.params = Data(WireCodec.encode(params))
    }
}

package struct AdminResponse: Codable, Sendable {
    package var ok: Bool
    package var result: Data?
    package var error: WireError?

    package init(result: any Encodable) {
        ok = true
        self.result = WireCodec.encodeData(result)
    }

    package init(error: WireError) {
        ok = false
        self.error = error
    }
}

package struct Empty: Codable, Sendable { package init() {} }

/// Owner roles a device class can require before a device may enroll.
package enum OwnerRole: String, Codable, Sendable, CaseIterable {
    case identity, secarch, ops, procurement, business
}

package struct DeviceAddParams: Codable, Sendable {
    package var id: String
    package var deviceClass: String
    /// Role → owner name (a person or team).
    package var owners: [String: String]
    /// Inventory fields (vendor, model, site, zone, ...); all optional.
    package var attributes: DeviceAttributes?
    package init(id: String, deviceClass: String, owners: [String: String], attributes: DeviceAttributes? = nil) {
        self.id = id
        self.deviceClass = deviceClass
        self.owners = owners
        self.attributes = attributes
    }
}

package struct DeviceRef: Codable, Sendable {
    package var id: String
    package init(id: String) { self.id = id }
}

package struct DeviceApproveParams: Codable, Sendable {
    package var id: String
    /// How long the enrollment token stays valid, in seconds.
    package var tokenTTL: Int?
    package init(id: String, tokenTTL: Int? = nil) {
        self.id = id
        self.tokenTTL = tokenTTL
    }
}

package struct ApprovalResult: Codable, Sendable {
    package var id: String
    /// Shown once; the controller keeps only its SHA-256.
    package var token: String
    package var expiresAt: Int64
    package init(id: String, token: String, expiresAt: Int64) {
        self.id = id
        self.token = token
        self.expiresAt = expiresAt
    }
}

package struct RevokeParams: Codable, Sendable {
    package var id: String
    /// RFC 5280 reason name, e.g. `keyCompromise`.
    package var reason: String
    package init(id: String, reason: String) {
        self.id = id
        self.reason = reason
    }
}

/// Revocation of every device a selector matches: `key=value` terms joined by
/// commas, all of which must hold (keys: id, class, site, zone, vendor,
/// model, firmware, tag).
package struct RevokeSelectedParams: Codable, Sendable {
    package var selector: String
    package var reason: String
    /// Only list the devices that would be revoked.
    package var dryRun: Bool?
    package init(selector: String, reason: String, dryRun: Bool? = nil) {
        self.selector = selector
        self.reason = reason
        self.dryRun = dryRun
    }
}

package struct RevokeSelectedResult: Codable, Sendable {
    package var selector: String
    package var dryRun: Bool
    /// Devices the selector matched that were revoked (or would be, with dryRun).
    package var matched: [String]
    /// Matched but already revoked or retired: left alone.
    package var skipped: [String]
    package var results: [RevokeResult]
    package var crlNumber: UInt64?
    package var brokerReloaded: Bool
    /// Time to revoke per device (the call until the broker refuses it), milliseconds.
    package var timeToRevokeP50Ms: Int?
    package var timeToRevokeP99Ms: Int?
    package var timeToRevokeMaxMs: Int?
    package init(selector: String, dryRun: Bool, matched: [String], skipped: [String], results: [RevokeResult], crlNumber: UInt64?, brokerReloaded: Bool) {
        self.selector = selector
        self.dryRun = dryRun
        self.matched = matched
        self.skipped = skipped
        self.results = results
        self.crlNumber = crlNumber
        self.brokerReloaded = brokerReloaded
    }
}

package struct RevokeResult: Codable, Sendable {
    package var id: String
    package var revokedSerials: [String]
    package var crlNumber: UInt64
    package var brokerReloaded: Bool
    package var commandSent: Bool
    /// Set when the CRL could not be written (the periodic refresh retries).
    package var crlError: String?
    /// The device's live broker session was cut (dynamic-security plugin); nil from older controllers.
    package var sessionCut: Bool?
    package var sessionCutError: String?
    /// From the revoke call until the broker refuses the device (CRL reloaded, session cut), in milliseconds.
    package var timeToRevokeMs: Int?
    package init(id: String, revokedSerials: [String], crlNumber: UInt64, brokerReloaded: Bool, commandSent: Bool) {
        self.id = id
        self.revokedSerials = revokedSerials
        self.crlNumber = crlNumber
        self.brokerReloaded = brokerReloaded
        self.commandSent = commandSent
    }
}

package struct CertificateView: Codable, Sendable {
    package var serial: String
    package var notBefore: Int64
    package var notAfter: Int64
    package var issuedAt: Int64
    /// `enroll` or `renew`.
    package var kind: String
    package var keyFingerprint: String
    package var revokedAt: Int64?
    package init(serial: String, notBefore: Int64, notAfter: Int64, issuedAt: Int64, kind: String, keyFingerprint: String, revokedAt: Int64?) {
        self.serial = serial
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.issuedAt = issuedAt
        self.kind = kind
        self.keyFingerprint = keyFingerprint
        self.revokedAt = revokedAt
    }
}

package struct DeviceView: Codable, Sendable {
    package var id: String
    package var deviceClass: String
    /// registered, approved, active, suspended, revoked, retired.
    package var state: String
    package var owners: [String: String]
    package var missingOwners: [String]
    package var serial: String?
    package var notAfter: Int64?
    package var lastSeen: Int64?
    /// What the device last reported on its state topic.
    package var reportedState: String?
    package var createdAt: Int64
    package var revokedAt: Int64?
    package var revocationReason: String?
    package var certificates: [CertificateView]?
    /// Inventory fields (schema v3).
    package var attributes: DeviceAttributes?
    /// Issuer (subject) of the current certificate.
    package var issuer: String?
    /// When the current certificate was issued (selector `issued-before`).
    package var issuedAt: Int64?
    package var retiredAt: Int64?
    /// The device this one replaced, and the one that replaced it.
    package var replaces: String?
    package var replacedBy: String?
    /// Set by a lifecycle event that requires a new key (e.g. `transfer`); cleared by the next issuance.
    package var rotationRequired: String?

    package init(id: String, deviceClass: String, state: String, owners: [String: String], missingOwners: [String], createdAt: Int64) {
        self.id = id
        self.deviceClass = deviceClass
        self.state = state
        self.owners = owners
        self.missingOwners = missingOwners
        self.createdAt = createdAt
    }
}

/// `device.list`: one page of the register, in device-id order. Paging is by
/// keyset (the last id of the page, inside an opaque cursor), not by offset:
/// a page costs the same at the end of a 100,000-device register as at its
/// start, and a walk over every page returns each device that existed for
/// the whole walk exactly once, whatever is added or changed meanwhile
/// (devices are never deleted; one added during the walk appears if its id
/// sorts after the page being read).
package struct DeviceListParams: Codable, Sendable, Equatable {
    /// Devices per page, 1 ... `maxLimit`; `defaultLimit` when absent.
    package var limit: Int?
    /// The previous page's `nextCursor`; absent for the first page.
    package var cursor: String?
    /// Filters, applied before paging (a page holds `limit` matching devices).
    package var state: String?
    package var deviceClass: String?
    package var site: String?

    package static let defaultLimit = 1000
    package static let maxLimit = 5000

    package init(limit: Int? = nil, cursor: String? = nil, state: String? = nil, deviceClass: String? = nil, site: String? = nil) {
        self.limit = limit
        self.cursor = cursor
        self.state = state
        self.deviceClass = deviceClass
        self.site = site
    }
}

package struct DeviceListResult: Codable, Sendable {
    package var devices: [DeviceView]
    /// Set when more devices may follow: pass it as `cursor` for the next page.
    /// Absent on the last page (and from controllers older than paging, which
    /// answered with the whole register).
    package var nextCursor: String?
    package init(devices: [DeviceView], nextCursor: String? = nil) {
        self.devices = devices
        self.nextCursor = nextCursor
    }
}

package struct ControllerStatus: Codable, Sendable {
    package var trustDomain: String
    package var brokerConnected: Bool
    package var devices: Int
    package var crlNumber: UInt64
    package var crlNextUpdate: Int64
    package var issued: Int
    package init(trustDomain: String, brokerConnected: Bool, devices: Int, crlNumber: UInt64, crlNextUpdate: Int64, issued: Int) {
        self.trustDomain = trustDomain
        self.brokerConnected = brokerConnected
        self.devices = devices
        self.crlNumber = crlNumber
        self.crlNextUpdate = crlNextUpdate
        self.issued = issued
    }
}
