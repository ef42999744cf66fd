#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `ca rotate|status|retire`, the same in `lanyard-controller` (over the
/// local admin socket, on the controller host) and `lanyardctl` (either
/// transport): both are clients of the controller's `ca.*` operations.
package enum CACommand {
    package static let optionNames: Set<String> = ["reason", "max-per-minute", "bundle-timeout", "device-timeout"]
    package static let flagNames: Set<String> = ["json", "no-wait"]

    /// `program` is `lanyard-controller` (with `--config FILE`) or `lanyardctl`.
    package static func usage(_ program: String) -> String {
        let indent = String(repeating: " ", count: program.count + 7)
        return """
        usage: \(program) ca rotate --reason TEXT [--max-per-minute N|unlimited] [--bundle-timeout DURATION] [--device-timeout DURATION] [--no-wait] [--json]
        \(indent) ca status [--json]
        \(indent) ca retire --reason TEXT [--json]
        rotate  a new issuing CA under the same root: the broker and every device trust it (signed `bundle`
                command; waits up to --bundle-timeout, default 10m, for the acknowledgements), it issues from
                then on, a campaign (--max-per-minute, default 600; --device-timeout, default 10m) re-issues
                every device's certificate, then the old CA is removed from every device's and the broker's
                trust and its key destroyed. Shows progress until it completes (exit 0) or stalls (exit 2);
                --no-wait returns at once. Role identity.
        status  the issuing CAs and the latest rotation (any role). Exit 2 when the rotation is stalled.
        retire  finish a stalled rotation: the old CA's still-valid certificates are revoked (superseded),
                those devices must enroll again; then the old CA is retired. Role identity.
        """
    }

    /// Exit statuses: 0 done, 2 stalled, 64 usage.
    package static func run(_ verb: String, _ args: Arguments, program: String, call: (AdminOperation, any Encodable) throws -> CAStatusView,
                            print: (String) -> Void, printJSON: (CAStatusView) -> Void) throws -> Int32 {
        let json = args.flag("json")
        var status: CAStatusView
        switch verb {
        case "rotate":
            guard let reason = args.value("reason") else { print("--reason is required\n\(usage(program))"); return 64 }
            var params = CARotateParams(reason: reason)
            if let text = args.value("max-per-minute") {
                if text == "unlimited" {
                    params.maxPerMinute = CampaignRollout.unlimitedPerMinute
                } else {
                    guard let n = Int(text), n > 0 else { print("--max-per-minute takes a positive whole number or unlimited"); return 64 }
                    params.maxPerMinute = n
                }
            }
            for (name, apply) in [("bundle-timeout", { (s: Int) in params.bundleTimeout = s }), ("device-timeout", { (s: Int) in params.deviceTimeout = s })] {
                guard let text = args.value(name) else { continue }
                guard let d = ConfigReader.parseDuration(text) else { print("--\(name) takes a duration such as 90s or 10m"); return 64 }
                apply(Int(d.components.seconds))
            }
            status = try call(.caRotate, params)
            if !json { print(status.render()) }
            if !args.flag("no-wait") {
                status = try CAStatusView.watch(status, fetch: { try call(.caStatus, Empty()) }, show: { if !json { print($0) } })
                if !json { print(status.render()) }
            }
        case "status":
            status = try call(.caStatus, Empty())
            if !json { print(status.render()) }
        case "retire":
            guard let reason = args.value("reason") else { print("--reason is required\n\(usage(program))"); return 64 }
            status = try call(.caRetire, CARetireParams(reason: reason))
            if !json { print(status.render()) }
        default:
            print("unknown ca command '\(verb)'\n\(usage(program))")
            return 64
        }
        if json { printJSON(status) }
        return status.rotation?.phase == "stalled" ? 2 : 0
    }
}
