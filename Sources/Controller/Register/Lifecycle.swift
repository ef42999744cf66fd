import Shared

/// Lifecycle states of a device in the register.
package enum DeviceState: String, Sendable, CaseIterable {
    case registered, approved, active, suspended, revoked, retired
}

/// What moves a device between states. `enroll` is the device's own doing;
/// the others are operator calls.
package enum LifecycleEvent: String, Sendable, CaseIterable {
    case approve, enroll, suspend, resume, revoke, retire, replace
}

/// The only allowed transitions:
/// registered → approved → active ⇄ suspended; approved|active|suspended → revoked → retired;
/// `replace` retires a device that is active, suspended or revoked (revoking it first).
/// `transfer` changes owners, not the state. Anything else is `invalid_transition`.
package enum Lifecycle {
    static let table: [LifecycleEvent: [DeviceState: DeviceState]] = [
        .approve: [.registered: .approved],
        .enroll: [.approved: .active],
        .suspend: [.active: .suspended],
        .resume: [.suspended: .active],
        // An approved device holds a live credential too, its one-time token: revoking voids it.
        .revoke: [.approved: .revoked, .active: .revoked, .suspended: .revoked],
        .retire: [.revoked: .retired],
        .replace: [.active: .retired, .suspended: .retired, .revoked: .retired],
    ]

    /// The state `event` leads to from `state`, or `invalid_transition` naming what is allowed.
    package static func next(from state: DeviceState, on event: LifecycleEvent) throws(WireError) -> DeviceState {
        guard let next = table[event]?[state] else {
            let from = (table[event] ?? [:]).keys.map(\.rawValue).sorted().joined(separator: ", ")
            throw WireError(.invalidTransition, "\(event.rawValue) is not allowed from \(state.rawValue) (only from: \(from))")
        }
        return next
    }

    /// States in which owners may still change (not once the identity is revoked or retired).
    package static let transferable: Set<DeviceState> = [.registered, .approved, .active, .suspended]
}
