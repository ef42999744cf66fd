#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

// Findings, access reviews and the evidence report: what the register shows
// an auditor, mapped to OWASP NHI Top 10 (2025) and NIST CSF 2.0 identifiers.

/// Framework identifiers a control maps to.
package enum FrameworkReference {
    package static let titles: [String: String] = [
        "NHI1": "OWASP NHI1:2025 Improper Offboarding",
        "NHI2": "OWASP NHI2:2025 Secret Leakage",
        "NHI4": "OWASP NHI4:2025 Insecure Authentication",
        "NHI5": "OWASP NHI5:2025 Overprivileged NHI",
        "NHI7": "OWASP NHI7:2025 Long-Lived Secrets",
        "NHI9": "OWASP NHI9:2025 NHI Reuse",
        "ID.AM-01": "NIST CSF 2.0 ID.AM-01 hardware inventory",
        "ID.AM-08": "NIST CSF 2.0 ID.AM-08 life-cycle management",
        "GV.RR-02": "NIST CSF 2.0 GV.RR-02 roles and responsibilities",
        "GV.SC-05": "NIST CSF 2.0 GV.SC-05 supplier contract requirements",
        "PR.AA-01": "NIST CSF 2.0 PR.AA-01 identities and credentials managed",
        "PR.AA-03": "NIST CSF 2.0 PR.AA-03 hardware authenticated",
        "PR.AA-05": "NIST CSF 2.0 PR.AA-05 access policy, least privilege, separation of duties",
    ]
}

package struct FindingView: Codable, Sendable, Equatable {
    /// e.g. `expired`, `shared_key`, `retired_with_valid_cert`.
    package var kind: String
    /// critical, high, medium, low.
    package var severity: String
    package var device: String?
    /// `role:name` of the owner who must act (or the role when nobody is assigned).
    package var owner: String
    /// The control violated, as in the evidence report.
    package var control: String
    package var references: [String]
    package var detail: String

    package init(kind: String, severity: String, device: String?, owner: String, control: String, references: [String], detail: String) {
        self.kind = kind
        self.severity = severity
        self.device = device
        self.owner = owner
        self.control = control
        self.references = references
        self.detail = detail
    }
}

package struct FindingsResult: Codable, Sendable {
    package var generatedAt: Int64
    package var findings: [FindingView]
    package init(generatedAt: Int64, findings: [FindingView]) {
        self.generatedAt = generatedAt
        self.findings = findings
    }
}

extension FindingsResult: LargeWireAnswer {
    /// `{"findings":[...],"generatedAt":N}`, as the sorted-keys encoder writes it, a slice of findings at a time.
    package func wireEncoded() -> Data {
        var out = Data(#"{"findings":"#.utf8)
        WireCodec.appendArray(findings, to: &out)
        out.append(contentsOf: Array(#","generatedAt":\#(generatedAt)}"#.utf8))
        return out
    }
}

/// One control of the evidence report.
package struct ControlEvidence: Codable, Sendable, Equatable {
    package var control: String
    package var title: String
    package var references: [String]
    /// pass, fail, or not_evaluated (with the reason in `note`).
    package var status: String
    /// Devices (or items) the control was checked on.
    package var checked: Int
    package var failing: [String]
    /// `role:name` owners who must act on the failures.
    package var owners: [String]
    package var note: String

    package init(control: String, title: String, references: [String], status: String, checked: Int, failing: [String], owners: [String], note: String) {
        self.control = control
        self.title = title
        self.references = references
        self.status = status
        self.checked = checked
        self.failing = failing
        self.owners = owners
        self.note = note
    }
}

package struct EvidenceReport: Codable, Sendable {
    package var generatedAt: Int64
    package var trustDomain: String
    package var devices: Int
    package var auditEntries: Int
    package var auditChainIntact: Bool
    package var controls: [ControlEvidence]

    package init(generatedAt: Int64, trustDomain: String, devices: Int, auditEntries: Int, auditChainIntact: Bool, controls: [ControlEvidence]) {
        self.generatedAt = generatedAt
        self.trustDomain = trustDomain
        self.devices = devices
        self.auditEntries = auditEntries
        self.auditChainIntact = auditChainIntact
        self.controls = controls
    }

    /// Markdown for an auditor's file.
    package func markdown(time: (Int64) -> String) -> String {
        var out = "# Lanyard evidence report\n\n"
        out += "Trust domain `\(trustDomain)`, generated \(time(generatedAt)); \(devices) devices; audit trail \(auditEntries) entries, "
        out += auditChainIntact ? "hash chain intact.\n\n" : "**hash chain BROKEN**.\n\n"
        out += "| control | status | checked | failing | owners to act | references |\n|---|---|---|---|---|---|\n"
        for c in controls {
            out += "| \(c.title) | \(c.status) | \(c.checked) | \(c.failing.count) | \(c.owners.joined(separator: ", ")) | \(c.references.joined(separator: ", ")) |\n"
        }
        for c in controls where !c.failing.isEmpty || !c.note.isEmpty {
            out += "\n## \(c.title)\n\n"
            if !c.note.isEmpty { out += "\(c.note)\n\n" }
            if !c.failing.isEmpty { out += "Failing: " + c.failing.prefix(200).map { "`\($0)`" }.joined(separator: ", ") + (c.failing.count > 200 ? ", …" : "") + "\n" }
        }
        out += "\n## References\n\n" + Set(controls.flatMap(\.references)).sorted().map { "- \(FrameworkReference.titles[$0] ?? $0)" }.joined(separator: "\n") + "\n"
        return out
    }

    /// One row per control; lists joined with `;`.
    package func csv() -> String {
        func q(_ s: String) -> String { s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.split(separator: "\"", omittingEmptySubsequences: false).joined(separator: "\"\"") + "\"" : s }
        var out = "control,status,checked,failing_count,failing,owners,references,note\r\n"
        for c in controls {
            out += [c.control, c.status, String(c.checked), String(c.failing.count), c.failing.joined(separator: ";"), c.owners.joined(separator: ";"),
                    c.references.joined(separator: ";"), c.note].map(q).joined(separator: ",") + "\r\n"
        }
        return out
    }
}

package struct ReviewStartParams: Codable, Sendable {
    /// Seconds the owners have to attest.
    package var dueIn: Int64
    package init(dueIn: Int64) { self.dueIn = dueIn }
}

package struct ReviewAttestParams: Codable, Sendable {
    package var review: Int64
    package var device: String
    /// `keep` or `retire`.
    package var decision: String
    package var note: String?
    package init(review: Int64, device: String, decision: String, note: String? = nil) {
        self.review = review
        self.device = device
        self.decision = decision
        self.note = note
    }
}

package struct ReviewRef: Codable, Sendable {
    /// Nil: the latest review.
    package var review: Int64?
    package init(review: Int64? = nil) { self.review = review }
}

package struct ReviewItemView: Codable, Sendable, Equatable {
    package var device: String
    package var owner: String
    package var decision: String?
    package var decidedBy: String?
    package var decidedAt: Int64?
    package var note: String?
    package init(device: String, owner: String, decision: String?, decidedBy: String?, decidedAt: Int64?, note: String?) {
        self.device = device
        self.owner = owner
        self.decision = decision
        self.decidedBy = decidedBy
        self.decidedAt = decidedAt
        self.note = note
    }
}

package struct ReviewView: Codable, Sendable {
    package var id: Int64
    package var startedAt: Int64
    package var startedBy: String
    package var dueAt: Int64
    package var items: [ReviewItemView]
    /// Devices nobody attested (so far, or by the due date).
    package var unattested: [String]
    package init(id: Int64, startedAt: Int64, startedBy: String, dueAt: Int64, items: [ReviewItemView], unattested: [String]) {
        self.id = id
        self.startedAt = startedAt
        self.startedBy = startedBy
        self.dueAt = dueAt
        self.items = items
        self.unattested = unattested
    }
}
