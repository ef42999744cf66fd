#if canImport(Glibc)
import Glibc
#endif
import Foundation
import Shared

/// `lanyardctl campaign …`: rotation campaigns.
func campaignCommand(_ verb: String) throws {
    switch verb {
    case "create":
        guard let selector = args.value("selector"), let reason = args.value("reason") else {
            fail("--selector and --reason are required\n\(commandHelp["campaign create"] ?? "")", exitUsage)
        }
        func count(_ name: String) -> Int? {
            guard let v = args.value(name) else { return nil }
            guard let n = Int(v), n >= 0 else { fail("--\(name) takes a whole number", exitUsage) }
            return n
        }
        var abort: Double?
        if let v = args.value("abort-failure-pct") {
            guard let d = Double(v) else { fail("--abort-failure-pct takes a percentage such as 20", exitUsage) }
            abort = d
        }
        var rollout = CampaignRollout(abortFailurePercent: abort)
        if args.value("max-per-minute") == "unlimited" {
            rollout.maxPerMinute = CampaignRollout.unlimitedPerMinute
        } else if let n = count("max-per-minute") {
            rollout.maxPerMinute = n
        }
        if let n = count("canary") { rollout.canary = n }
        if let n = count("abort-min-executed") { rollout.abortMinExecuted = n }
        if let n = seconds("timeout") { rollout.deviceTimeout = Int(n) }
        if let n = count("retries") { rollout.retries = n }
        if let n = seconds("window") { rollout.window = Int(n) }
        rollout.abortFailureType = args.value("abort-failure-type")
        if let base = count("ramp-base") {
            rollout.rampBasePerMinute = base
            guard let factor = Double(args.value("ramp-factor") ?? "2") else { fail("--ramp-factor takes a number such as 2", exitUsage) }
            rollout.rampFactor = factor
            rollout.rampEverySucceeded = count("ramp-every") ?? 10
        }
        let params = CampaignCreateParams(trigger: args.value("trigger") ?? "manual", reason: reason, selector: selector, rollout: rollout)
        let c = try client.call(.campaignCreate, params, as: CampaignView.self)
        if json { printJSON(c) } else {
            print("campaign \(c.id) created (draft): \(c.total) device(s) match \(c.selector)\((c.counts["skipped"] ?? 0) > 0 ? ", \(c.counts["skipped"] ?? 0) skipped" : "")")
            print("start it with: lanyardctl campaign start \(c.id)")
        }
    case "start", "pause", "resume", "cancel":
        let op: AdminOperation = ["start": .campaignStart, "pause": .campaignPause, "resume": .campaignResume, "cancel": .campaignCancel][verb]!
        let c = try client.call(op, CampaignRef(id: argument(2, "campaign id"), reason: args.value("reason")), as: CampaignView.self)
        if json { printJSON(c) } else { print("campaign \(c.id) is \(c.state)") }
    case "status":
        let ref = CampaignRef(id: argument(2, "campaign id"))
        var c = try client.call(.campaignStatus, ref, as: CampaignView.self)
        if args.flag("watch") && !json {
            // A live progress bar until the campaign ends (on a terminal it redraws one line).
            let tty = isatty(STDOUT_FILENO) == 1
            while true {
                let line = progressLine(c)
                if tty { print("\r\u{1B}[2K" + line, terminator: "") } else { print(line) }
                fflush(nil)  // every stream: `stdout` itself is a C global Swift 6 will not touch
                if c.isFinished || c.state == "draft" || c.state == "paused" { break }
                Thread.sleep(forTimeInterval: 1)
                c = try client.call(.campaignStatus, ref, as: CampaignView.self)
            }
            if tty { print("") }
        }
        if json { printJSON(c) } else {
            if !args.flag("watch") { print(progressLine(c)) }
            let r = c.rollout
            print("trigger \(c.trigger), selector \(c.selector), \(r.maxPerMinute)/min, canary \(r.canary), timeout \(r.deviceTimeout) s, retries \(r.retries)"
                  + (r.rampBasePerMinute.map { ", ramp from \($0)/min ×\(r.rampFactor ?? 2) every \(r.rampEverySucceeded ?? 0) succeeded" } ?? "")
                  + (r.abortFailurePercent.map { ", abort at \($0)% \(r.abortFailureType ?? "all") after \(r.abortMinExecuted)" } ?? "") + (c.endReason.map { "; ended: \($0)" } ?? ""))
            table(["DEVICE", "STATE", "ATTEMPTS", "CODE", "NEW SERIAL"],
                  (c.devices ?? []).map { [$0.id, $0.state, String($0.attempts), $0.code ?? "-", $0.issuedSerial ?? "-"] })
        }
        if c.state == "aborted" { exit(exitPartial) }
    case "list":
        let r = try client.call(.campaignList, Empty(), as: CampaignListResult.self)
        if json { printJSON(r) } else {
            table(["CAMPAIGN", "STATE", "TRIGGER", "SELECTOR", "DEVICES", "SUCCEEDED", "FAILED", "CREATED"],
                  r.campaigns.map { [$0.id, $0.state, $0.trigger, $0.selector, String($0.total), String($0.counts["succeeded"] ?? 0),
                                     String(($0.counts["failed"] ?? 0) + ($0.counts["timed_out"] ?? 0)), time($0.createdAt)] })
        }
    default:
        fail("unknown campaign command '\(verb)'\n\(globalUsage)", exitUsage)
    }
}

/// `[########............] 8/20 succeeded · 2 sent · 1 waiting · 0 failed · running`
func progressLine(_ c: CampaignView) -> String {
    let done = ["succeeded", "failed", "timed_out", "skipped"].reduce(0) { $0 + (c.counts[$1] ?? 0) }
    let width = 24
    let filled = c.total == 0 ? width : done * width / c.total
    let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
    let parts = ["sent", "waiting", "queued", "failed", "timed_out", "skipped"].compactMap { k in (c.counts[k] ?? 0) > 0 ? "\(c.counts[k] ?? 0) \(k)" : nil }
    return "[\(bar)] \(c.counts["succeeded"] ?? 0)/\(c.total) succeeded" + (parts.isEmpty ? "" : " · " + parts.joined(separator: " · ")) + " · \(c.state)"
}
