/// `[hooks]` in the agent configuration: commands run after a renewal is
/// installed (and after enrollment) and after a revocation erased the keys.
package struct HookConfiguration: Sendable, Equatable {
    /// `/bin/sh -c` command run after a new credential is installed.
    package var onRenew: String?
    /// `/bin/sh -c` command run after the keys were erased on revocation.
    package var onRevoke: String?
    /// After this the hook's process group gets SIGKILL.
    package var timeout: Duration

    package init(onRenew: String? = nil, onRevoke: String? = nil, timeout: Duration = .seconds(30)) {
        self.onRenew = onRenew
        self.onRevoke = onRevoke
        self.timeout = timeout
    }

    package func command(for event: HookContext.Event) -> String? {
        switch event {
        case .renew: onRenew
        case .revoke: onRevoke
        }
    }
}
