import Foundation
import Shared

/// Answers admin calls from either transport (the local Unix socket or
/// HTTPS): checks the caller's roles first, then runs the operation. Every
/// change is audited by the service that makes it; every refusal, the
/// role check included, is audited here.
package struct AdminDispatcher: Sendable {
    package let store: Store
    package let register: DeviceRegister
    package let revocation: RevocationService
    package let operators: OperatorRegister
    package let vendors: VendorRegister
    package let exceptions: ExceptionRegister
    package let csv: RegisterCSV
    package let findings: FleetFindings
    package let review: AccessReview
    /// Nil where no campaigns run (unit tests of the register): their calls are refused.
    package let campaigns: CampaignService?
    package let events: LifecycleEvents?
    /// Nil where no CA rotation runs (unit tests of the register).
    package let caRotation: CARotation?
    package let configuration: ControllerConfiguration
    package let brokerConnected: @Sendable () -> Bool
    package let clock: @Sendable () -> Date
    let log: Logger

    private func rotation() throws -> CARotation {
        guard let caRotation else { throw WireError(.internal, "CA rotation is not available in this controller") }
        return caRotation
    }

    private func campaignService() throws -> CampaignService {
        guard let campaigns else { throw WireError(.internal, "campaigns are not running in this controller") }
        return campaigns
    }

    package init(store: Store, register: DeviceRegister, revocation: RevocationService, configuration: ControllerConfiguration,
                 issuerName: String, brokerConnected: @escaping @Sendable () -> Bool, campaigns: CampaignService? = nil, events: LifecycleEvents? = nil,
                 caRotation: CARotation? = nil, clock: @escaping @Sendable () -> Date, log: Logger) {
        self.campaigns = campaigns
        self.caRotation = caRotation
        self.events = events
        self.store = store
        self.register = register
        self.revocation = revocation
        self.operators = OperatorRegister(store: store, clock: clock)
        self.vendors = VendorRegister(store: store, clock: clock)
        self.exceptions = ExceptionRegister(store: store, register: register, clock: clock)
        self.csv = RegisterCSV(register: register)
        var findings = caRotation.map { ring in
            FleetFindings(store: store, register: register, currentIssuerName: { ring.authorities.active.certificate.commonName ?? "" }, clock: clock)
        } ?? FleetFindings(store: store, register: register, currentIssuer: issuerName, clock: clock)
        findings.crl = revocation.crl
        self.findings = findings
        self.review = AccessReview(store: store, clock: clock)
        self.configuration = configuration
        self.brokerConnected = brokerConnected
        self.clock = clock
        self.log = log
    }

    package func handle(_ op: AdminOperation, params: [UInt8], actor: AdminActor) -> AdminResponse {
        if let refusal = Authorization.check(op, actor) {
            audit(op, actor: actor, error: refusal)
            return AdminResponse(error: refusal)
        }
        do {
            return AdminResponse(result: try run(op, params: params, actor: actor))
        } catch let error as WireError {
            audit(op, actor: actor, error: error)
            return AdminResponse(error: error)
        } catch let error as DecodingError {
            let refusal = WireError(.badRequest, "parameters of \(op.rawValue) do not decode: \(error)")
            audit(op, actor: actor, error: refusal)
            return AdminResponse(error: refusal)
        } catch {
            log.error("admin call failed", ["op": op.rawValue, "error": "\(error)"])
            return AdminResponse(error: WireError(.internal, "\(error)"))
        }
    }

    private func run(_ op: AdminOperation, params bytes: [UInt8], actor: AdminActor) throws -> any Encodable {
        func params<P: Decodable>(_ type: P.Type) throws -> P { try WireCodec.decode(P.self, from: bytes, limit: 40 << 20) }
        let who = actor.auditName
        switch op {
        case .deviceAdd: return try register.add(params(DeviceAddParams.self), actor: who)
        case .deviceApprove: return try register.approve(params(DeviceApproveParams.self), defaultTTL: configuration.tokenTTL, actor: who)
        case .deviceList: return try register.page(params(DeviceListParams.self))
        case .deviceShow: return try register.show(params(DeviceRef.self).id)
        case .deviceRevoke: return try revocation.revoke(params(RevokeParams.self), actor: who)
        case .campaignCreate: return try campaignService().create(params(CampaignCreateParams.self), register: register, actor: who)
        case .campaignStart: return try campaignService().start(params(CampaignRef.self), actor: who)
        case .campaignPause: return try campaignService().pause(params(CampaignRef.self), actor: who)
        case .campaignResume: return try campaignService().resume(params(CampaignRef.self), actor: who)
        case .campaignCancel: return try campaignService().cancel(params(CampaignRef.self), actor: who)
        case .campaignStatus: return try campaignService().status(params(CampaignRef.self))
        case .campaignList: return try campaignService().list()
        case .caRotate: return try rotation().rotate(params(CARotateParams.self), actor: who)
        case .caStatus: return try rotation().status()
        case .caRetire: return try rotation().retire(params(CARetireParams.self), actor: who)
        case .eventPost:
            guard let events else { throw WireError(.internal, "lifecycle events are not handled by this controller") }
            return try events.post(params(EventPostParams.self), actor: who)
        case .deviceRevokeSelected: return try revocation.revokeSelected(params(RevokeSelectedParams.self), register: register, actor: who)
        case .deviceUpdate: return try register.update(params(DeviceUpdateParams.self), actor: who)
        case .deviceTransition: return try register.transition(params(DeviceTransitionParams.self), actor: who)
        case .deviceTransfer: return try register.transfer(params(DeviceTransferParams.self), actor: who)
        case .deviceReplace:
            let p = try params(DeviceReplaceParams.self)
            // The old device must hold no valid certificate once retired: revoke it first (CRL, broker, command).
            let state = try store.withConnection { try register.currentState($0, DeviceRegister.validID(p.id)) }
            if state == .active || state == .suspended {
                _ = try revocation.revoke(RevokeParams(id: p.id, reason: "superseded"), actor: who)
            }
            return try register.replace(p, actor: who)
        case .status:
            return try store.withConnection { db -> ControllerStatus in
                let devices = try db.query("SELECT count(*) FROM devices").first?.first?.int ?? 0
                let issued = try db.query("SELECT count(*) FROM certificates").first?.first?.int ?? 0
                let number = UInt64(try db.meta("crl_number") ?? "0") ?? 0
                let next = Int64(try db.meta("crl_next_update") ?? "0") ?? 0
                return ControllerStatus(trustDomain: configuration.trustDomain, brokerConnected: brokerConnected(),
                                        devices: Int(devices), crlNumber: number, crlNextUpdate: next, issued: Int(issued))
            }
        case .auditVerify:
            // Verify first, then record that someone looked.
            return try store.withConnection { db -> AuditVerification in
                let v = try AuditChain.verify(db)
                try db.audit(time: clock(), actor: who, action: "audit.verify", target: "-", outcome: v.ok ? "ok" : "broken",
                             detail: v.problem ?? "entries=\(v.entries)")
                return v
            }
        case .auditExport:
            return AuditExport(entries: try store.withConnection { db -> [AuditEntry] in
                let all = try AuditChain.entries(db)
                try db.audit(time: clock(), actor: who, action: "audit.export", target: "-", outcome: "ok", detail: "entries=\(all.count)")
                return all
            })
        case .classList: return ClassListResult(classes: register.policies.list())
        case .classSet: return try register.policies.set(params(ClassSetParams.self), actor: who, now: clock())
        case .vendorList: return VendorListResult(vendors: try vendors.list())
        case .vendorSet: return try vendors.set(params(VendorView.self), actor: who)
        case .exceptionRequest: return try exceptions.request(params(ExceptionRequestParams.self), requester: actor.name, auditActor: who)
        case .exceptionDecide: return try exceptions.decide(params(ExceptionDecideParams.self), decider: actor.name, auditActor: who)
        case .exceptionList: return ExceptionListResult(exceptions: try exceptions.list())
        case .operatorAdd: return try operators.add(params(OperatorAddParams.self), createdBy: who)
        case .operatorList: return OperatorListResult(operators: try operators.list())
        case .operatorRemove: return try operators.remove(params(OperatorRef.self), actor: actor)
        case .whoami: return WhoAmI(name: actor.name, roles: actor.roles.map(\.rawValue).sorted())
        case .registerImport: return try csv.importCSV(params(CSVImportParams.self), actor: who)
        case .registerExport: return CSVExport(csv: try csv.export())
        case .findings: return FindingsResult(generatedAt: Int64(clock().timeIntervalSince1970), findings: try findings.findings())
        case .report:
            let report: EvidenceReport = try EvidenceReportBuilder(findings: findings, review: review, trustDomain: configuration.trustDomain).build()
            try store.withConnection { db in
                try db.audit(time: clock(), actor: who, action: "report.evidence", target: "-", outcome: "ok",
                             detail: "controls=\(report.controls.count) failing=\(report.controls.filter { $0.status == "fail" }.map(\.control).joined(separator: ","))")
            }
            return report as EvidenceReport
        case .reviewStart: return try review.start(params(ReviewStartParams.self), actor: who)
        case .reviewAttest: return try review.attest(params(ReviewAttestParams.self), decider: actor.name, auditActor: who)
        case .reviewShow: return try review.show(params(ReviewRef.self))
        }
    }

    private func audit(_ op: AdminOperation, actor: AdminActor, error: WireError) {
        try? store.withConnection { db in
            try db.audit(time: clock(), actor: actor.auditName, action: op.rawValue, target: "-", outcome: error.code, detail: error.message)
        }
    }

    /// A call that never reached an operation: no or an unknown token.
    package func auditUnauthenticated(_ who: String, path: String) {
        try? store.withConnection { db in
            try db.audit(time: clock(), actor: who, action: "admin.call", target: String(path.prefix(64)), outcome: WireError.Code.unauthorized.rawValue)
        }
    }
}
