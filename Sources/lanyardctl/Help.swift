// Usage text of every command: `lanyardctl COMMAND --help` prints its entry.
import Shared

let globalUsage = """
usage: lanyardctl [--server URL --cacert FILE (--token-file FILE | --cert FILE --key FILE) | --socket PATH] [--json] COMMAND [--help]

Commands (lanyardctl COMMAND --help for each):
  device add|approve|list|show|update|suspend|resume|retire|transfer|replace
  revoke                      revoke a device or every device a selector matches (register, CRL, reload, command, session cut)
  campaign create|start|pause|resume|cancel|status|list   rotation campaigns (rate, canary, abort, timeout, retries)
  event TYPE                  a lifecycle event: campaign, revocation or retirement
  ca rotate|status|retire     rotate the issuing CA with the fleet running
  class list|set              device class policies (versioned)
  vendor list|set             vendors and their identity clauses
  exception request|approve|reject|list
  operator add|remove|list    admin API operators and roles
  whoami                      the operator and roles this token has
  register export|import      CSV for CMDB synchronisation
  audit verify|export         the hash-chained audit trail
  findings                    what is wrong in the fleet, with the owner to act
  report                      evidence per control (OWASP NHI Top 10 2025, NIST CSF 2.0)
  review start|attest|show    periodic access review by business owners
  status                      controller, broker connection and CRL

Connection:
  --server URL       HTTPS admin API, e.g. https://127.0.0.1:8443 ($LANYARD_URL)
  --cacert FILE      CA bundle to verify the server ($LANYARD_CACERT)
  --token-file FILE  file holding the operator's bearer token ($LANYARD_TOKEN_FILE, or the token in $LANYARD_TOKEN)
  --cert FILE --key FILE  an operator client certificate (lanyard-controller operator cert) instead of a token
                     ($LANYARD_CERT, $LANYARD_KEY)
  --socket PATH      local admin socket when no server is given ($LANYARD_SOCKET, default /var/lib/lanyard/admin.sock)
  --json             print the API's JSON instead of a table

Exit status: 0 done, 1 refused (coded error on stderr), 2 done in part, 64 usage,
69 controller unreachable, 77 not authenticated or not allowed (role).
`findings` exits 2 when there are findings.
"""

let commandHelp: [String: String] = [
    "ca": CACommand.usage("lanyardctl"),
    "event": """
        usage: lanyardctl event TYPE (--device ID | --selector KEY=VALUE[,KEY=VALUE...]) --reason TEXT [--ref EVENT-ID]
        Post a lifecycle event (roles ops, secarch). ca.rotated, vendor.changed, firmware.updated, ownership.transferred,
        policy.changed and device.replaced start a rotation campaign from the type's template ([event.TYPE] in
        controller.conf); device.compromised revokes at once (keyCompromise); device.retired sends the signed retire
        command, waits a few seconds for the key-wipe acknowledgements, revokes (cessationOfOperation), retires in the
        register and records a retirement check per device. Exit 2 when a retirement was not confirmed.
        """,
    "campaign create": """
        usage: lanyardctl campaign create --selector KEY=VALUE[,KEY=VALUE...] --reason TEXT [--trigger TYPE] [--max-per-minute N|unlimited]
                                          [--canary N] [--abort-failure-pct P] [--abort-failure-type all|failed|timed_out] [--abort-min-executed N]
                                          [--timeout D] [--retries N] [--window D] [--ramp-base N [--ramp-factor F] [--ramp-every N]]
        A rotation campaign in draft over the devices the selector matches now (keys id, class, site, zone, vendor, model,
        firmware, tag, issuer, issued-before; a value may list alternatives: id=gw-1|gw-2) (role ops). --ramp-base starts at N
        per minute and multiplies the rate by --ramp-factor (default 2) each time --ramp-every (default 10) more devices have
        succeeded, up to --max-per-minute. Unlimited goes as fast as devices complete, at most 1,000 devices between their
        command and their outcome at once. --abort-failure-type picks which failures count toward --abort-failure-pct. Trigger: manual (default), ca.rotated, vendor.changed, firmware.updated, ownership.transferred,
        policy.changed, device.replaced, device.compromised, device.retired. Defaults: 60 per minute, no canary, no abort,
        timeout 10m, no retries, window 24h (offline devices are sent the command when they reconnect within it).
        """,
    "campaign start": "usage: lanyardctl campaign start ID\nStart a draft campaign (role ops).",
    "campaign pause": "usage: lanyardctl campaign pause ID [--reason TEXT]\nStop sending; devices already sent may still succeed (role ops).",
    "campaign resume": "usage: lanyardctl campaign resume ID [--reason TEXT]\nSend again (role ops).",
    "campaign cancel": "usage: lanyardctl campaign cancel ID [--reason TEXT]\nEnd it; nothing more is sent (role ops).",
    "campaign status": "usage: lanyardctl campaign status ID [--watch]\nProgress, counts by state and every device's execution (any role); --watch redraws a progress bar until it ends. Exit 2 when aborted.",
    "campaign list": "usage: lanyardctl campaign list\nEvery campaign with its state and counts (any role).",
    "device add": """
        usage: lanyardctl device add ID --class CLASS [--owner ROLE=NAME]... [--vendor V] [--model M] [--hw-serial S]
                                     [--firmware F] [--site S] [--zone it|ot] [--tag T]... [--bootstrap token|idevid]
        Register a device (role ops). Owner roles: identity, secarch, ops, procurement, business.
        """,
    "device approve": "usage: lanyardctl device approve ID [--token-ttl DURATION]\nApprove a registered device and print its one-time enrollment token (role ops).",
    "device list": """
        usage: lanyardctl device list [--state STATE] [--class CLASS] [--site SITE] [--page-size N] [--no-progress]
        Every device with state, serial and expiry (any role). The controller answers in pages (device.list with a cursor);
        lanyardctl asks for every page and prints each as it arrives, so the whole register is listed whatever its size.
        --page-size: devices per request, 1 to 5000 (default: the controller's, 1000). A listing of more than one page
        shows its progress on stderr when stderr is a terminal (--no-progress: never). A page that fails ends the
        listing with the error on stderr and exit 1 or 69, after the devices already printed.
        """,
    "device show": "usage: lanyardctl device show ID\nOne device with its inventory fields and certificates (any role).",
    "device update": """
        usage: lanyardctl device update ID [--vendor V] [--model M] [--hw-serial S] [--firmware F] [--site S] [--zone it|ot]
                                        [--tag T]... [--bootstrap METHOD] [--reason TEXT]
        Change inventory fields (role ops). An empty value clears a field. A firmware or vendor change marks the key for rotation.
        """,
    "device suspend": "usage: lanyardctl device suspend ID [--reason TEXT]\nactive → suspended: renewals are refused until resumed (role ops).",
    "device resume": "usage: lanyardctl device resume ID [--reason TEXT]\nsuspended → active (role ops).",
    "device retire": "usage: lanyardctl device retire ID [--reason TEXT]\nrevoked → retired; refused while a certificate is still valid (role ops).",
    "device transfer": "usage: lanyardctl device transfer ID --owner ROLE=NAME... [--reason TEXT]\nNew owners; an enrolled device must rotate its key (role ops).",
    "device replace": "usage: lanyardctl device replace OLD --with NEW [--reason TEXT]\nRevoke (if needed) and retire OLD, link NEW (registered or approved) to it (role ops).",
    "revoke": "usage: lanyardctl revoke ID --reason REASON\n       lanyardctl revoke --selector KEY=VALUE[,KEY=VALUE...] --reason REASON [--dry-run]\nRevoke (RFC 5280 reason, e.g. keyCompromise, cessationOfOperation) (roles ops, secarch): the register, one CRL and broker reload, a signed revoke command, the live session cut. A selector (keys id, class, site, zone, vendor, model, firmware, tag; all terms must hold) revokes every device it matches; --dry-run lists them. Exit 2 if the broker or a device was not told or a session was not cut.",
    "status": "usage: lanyardctl status\nController, broker connection and CRL (any role).",
    "audit verify": "usage: lanyardctl audit verify\nRecompute the audit hash chain; exit 1 naming the first bad entry (roles auditor, admin).",
    "audit export": "usage: lanyardctl audit export [--output FILE]\nThe audit trail as JSON lines (roles auditor, admin).",
    "class list": "usage: lanyardctl class list\nCurrent policy and version of every device class (any role).",
    "class set": """
        usage: lanyardctl class set NAME [--ttl D] [--max-ttl D] [--renew-at F] [--required-owners R,R] [--key-algorithms A,A]
                                   [--rotate-keys yes|no] [--bootstrap-methods M,M] [--renewal-sla D] [--revocation-sla D]
                                   [--offline-tolerance D] [--reenroll-after-expiry yes|no] [--reenroll-window D] [--exception-max D]
                                   [--reapprove-after-revocation yes|no] [--reason TEXT]
        Record a new version of a class policy, starting from the current one (role identity).
        """,
    "vendor list": "usage: lanyardctl vendor list\nVendors, support end and identity clauses (any role).",
    "vendor set": """
        usage: lanyardctl vendor set NAME [--support-end YYYY-MM-DD] [--vendor-managed yes|no] [--clauses issuance,rotation,revocation]
        Create or replace a vendor record (role procurement).
        """,
    "exception request": """
        usage: lanyardctl exception request (--device ID | --selector class=C|site=S|tag=T) --control key_reuse|ttl_above_max
                                            [--ttl DURATION] --justification TEXT --compensating TEXT --expires YYYY-MM-DD|DURATION
        Ask for an exception to the class policy (role ops); it has no effect until the business owner approves it.
        """,
    "exception approve": "usage: lanyardctl exception approve ID [--reason TEXT]\nApprove (role business; only the devices' business owner, never the requester).",
    "exception reject": "usage: lanyardctl exception reject ID [--reason TEXT]\nReject (role business; only the devices' business owner, never the requester).",
    "exception list": "usage: lanyardctl exception list\nEvery exception with its status (pending, approved, rejected, expired) (any role).",
    "operator add": "usage: lanyardctl operator add NAME --role ROLE [--role ROLE]...\nCreate an operator and print its token once (role admin).",
    "operator remove": "usage: lanyardctl operator remove NAME [--reason TEXT]\nOffboard an operator: the token stops working at once (role admin; not yourself).",
    "operator list": "usage: lanyardctl operator list\nOperators and their roles (roles admin, auditor).",
    "whoami": "usage: lanyardctl whoami\nThe operator and roles the controller sees for this token.",
    "findings": "usage: lanyardctl findings [--severity critical|high|medium|low]\nFindings with severity, device, owner to act and control violated (any role). Exit 2 when there are any.",
    "report": "usage: lanyardctl report [--format md|json|csv] [--output FILE]\nThe evidence report per control, mapped to OWASP NHI Top 10 2025 and NIST CSF 2.0 (any role).",
    "review start": "usage: lanyardctl review start [--due DURATION]\nStart an access review: one item per active device for its business owner (role identity; default due 14d).",
    "review attest": "usage: lanyardctl review attest DEVICE --decision keep|retire [--review ID] [--note TEXT]\nAttest a device in the latest (or given) review (role business; only the device's business owner).",
    "review show": "usage: lanyardctl review show [--review ID]\nThe review's items, decisions and unattested devices (any role).",
    "register export": "usage: lanyardctl register export [--output FILE]\nThe register as CSV (any role).",
    "register import": """
        usage: lanyardctl register import FILE [--dry-run]
        Create new devices and update inventory fields from CSV (role ops). Every row is checked first;
        if any row is bad nothing is applied and each bad row is reported with its line number (exit 1).
        """,
]
