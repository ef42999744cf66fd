// Usage text of every command: `lanyardctl COMMAND --help` prints its entry.

let globalUsage = """
usage: lanyardctl [--server URL --cacert FILE --token-file FILE | --socket PATH] [--json] COMMAND [--help]

Commands (lanyardctl COMMAND --help for each):
  device add|approve|list|show|update|suspend|resume|retire|transfer|replace
  revoke                      revoke a device (register, CRL, broker reload, signed command)
  class list|set              device class policies (versioned)
  vendor list|set             vendors and their identity clauses
  exception request|approve|reject|list
  operator add|list, whoami   admin API operators and roles
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
  --socket PATH      local admin socket when no server is given ($LANYARD_SOCKET, default /var/lib/lanyard/admin.sock)
  --json             print the API's JSON instead of a table

Exit status: 0 done, 1 refused (coded error on stderr), 2 done in part, 64 usage,
69 controller unreachable, 77 not authenticated or not allowed (role).
`findings` exits 2 when there are findings.
"""

let commandHelp: [String: String] = [
    "device add": """
        usage: lanyardctl device add ID --class CLASS [--owner ROLE=NAME]... [--vendor V] [--model M] [--hw-serial S]
                                     [--firmware F] [--site S] [--zone it|ot] [--tag T]... [--bootstrap token|idevid]
        Register a device (role ops). Owner roles: identity, secarch, ops, procurement, business.
        """,
    "device approve": "usage: lanyardctl device approve ID [--token-ttl DURATION]\nApprove a registered device and print its one-time enrollment token (role ops).",
    "device list": "usage: lanyardctl device list [--state STATE] [--class CLASS] [--site SITE]\nEvery device with state, serial and expiry (any role).",
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
    "revoke": "usage: lanyardctl revoke ID --reason REASON\nRevoke (RFC 5280 reason, e.g. keyCompromise, cessationOfOperation) (roles ops, secarch). Exit 2 if the broker or the device was not told.",
    "status": "usage: lanyardctl status\nController, broker connection and CRL (any role).",
    "audit verify": "usage: lanyardctl audit verify\nRecompute the audit hash chain; exit 1 naming the first bad entry (roles auditor, admin).",
    "audit export": "usage: lanyardctl audit export [--output FILE]\nThe audit trail as JSON lines (roles auditor, admin).",
    "class list": "usage: lanyardctl class list\nCurrent policy and version of every device class (any role).",
    "class set": """
        usage: lanyardctl class set NAME [--ttl D] [--max-ttl D] [--renew-at F] [--required-owners R,R] [--key-algorithms A,A]
                                   [--rotate-keys yes|no] [--bootstrap-methods M,M] [--renewal-sla D] [--revocation-sla D]
                                   [--offline-tolerance D] [--reenroll-after-expiry yes|no] [--reenroll-window D] [--exception-max D] [--reason TEXT]
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
