/// A coded error as it travels on the wire and out of the admin API. Codes are
/// stable strings that scripts and devices match on; messages are for people.
package struct WireError: Codable, Sendable, Equatable, Error, CustomStringConvertible {
    package var code: String
    package var message: String

    package init(_ code: Code, _ message: String) {
        self.code = code.rawValue
        self.message = message
    }

    package var description: String { "\(code): \(message)" }

    /// Known codes. A struct, not an enum, so a newer peer's code still decodes.
    package struct Code: RawRepresentable, Hashable, Sendable, ExpressibleByStringLiteral {
        package let rawValue: String
        package init(rawValue: String) { self.rawValue = rawValue }
        package init(stringLiteral value: String) { rawValue = value }

        package static let badRequest: Code = "bad_request"
        package static let notRegistered: Code = "not_registered"
        package static let notApproved: Code = "not_approved"
        package static let ownersMissing: Code = "owners_missing"
        package static let badToken: Code = "bad_token"
        package static let tokenUsed: Code = "token_used"
        package static let tokenExpired: Code = "token_expired"
        package static let badCSR: Code = "bad_csr"
        package static let identityMismatch: Code = "identity_mismatch"
        package static let keyTypeNotAllowed: Code = "key_type_not_allowed"
        package static let keyReused: Code = "key_reused"
        package static let policyViolation: Code = "policy_violation"
        package static let revoked: Code = "revoked"
        /// Re-enrollment after expiry: the proof or the previous certificate is not acceptable.
        package static let badReenrollment: Code = "bad_reenrollment"
        /// The device's class does not allow re-enrollment after expiry.
        package static let reenrollmentNotAllowed: Code = "reenrollment_not_allowed"
        /// The certificate expired longer ago than the class's re-enrollment window.
        package static let reenrollmentWindowPassed: Code = "reenrollment_window_passed"
        package static let rateLimited: Code = "rate_limited"
        package static let invalidTransition: Code = "invalid_transition"
        package static let alreadyExists: Code = "already_exists"
        package static let notFound: Code = "not_found"
        package static let unauthorized: Code = "unauthorized"
        /// Authenticated, but no role of the caller allows the call.
        package static let forbidden: Code = "forbidden"
        /// The device is suspended: no renewal until it is resumed.
        package static let suspended: Code = "suspended"
        /// Separation of duties: e.g. the requester of an exception deciding it.
        package static let separationOfDuties: Code = "separation_of_duties"
        /// A CSV import found bad rows and applied nothing.
        package static let invalidRows: Code = "invalid_rows"
        /// A CA rotation needs the root CA's key (or a new issuing CA signed offline, placed in the PKI directory).
        package static let rootKeyOffline: Code = "root_key_offline"
        /// A paging cursor (`device.list`) that this controller did not issue or cannot read: start again without one.
        package static let invalidCursor: Code = "invalid_cursor"
        package static let `internal`: Code = "internal"
    }
}
