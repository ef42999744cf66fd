import Foundation
import Testing

@testable import Controller
import Shared
import TestSupport

@Suite("The published API documents match the code")
struct AdminAPIDocumentTests {
    @Test("docs/openapi.yaml has a path for every admin operation and no other; docs/admin-api.md names each one")
    func openAPICoversEveryOperation() throws {
        let yaml = try String(contentsOfFile: Broker.repositoryRoot + "/docs/openapi.yaml", encoding: .utf8)
        let paths = Set(yaml.split(separator: "\n").filter { $0.hasPrefix("  \"/v1/") || $0.hasPrefix("  /v1/") }
            .map { $0.trimmed().replacingOccurrences(of: "\"", with: "").replacingOccurrences(of: ":", with: "") })
        #expect(paths == Set(AdminOperation.allCases.map { "/v1/\($0.rawValue)" }))
        let guide = try String(contentsOfFile: Broker.repositoryRoot + "/docs/admin-api.md", encoding: .utf8)
        for op in AdminOperation.allCases {
            #expect(guide.contains("`\(op.rawValue)`"), "docs/admin-api.md does not name \(op.rawValue)")
        }
    }

    @Test("each role's operations in docs/admin-api.md match the controller's authorization table")
    func roleTableMatchesCode() throws {
        let guide = try String(contentsOfFile: Broker.repositoryRoot + "/docs/admin-api.md", encoding: .utf8)
        let roles = OperatorRole.allCases
        var covered = Set<AdminOperation>()
        for line in guide.split(separator: "\n") where line.hasPrefix("| `") || line.hasPrefix("| reads:") {
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmed() }
            guard cells.count == roles.count + 3 else { continue }  // only the role table: operation + one column per role
            // | ops | identity | secarch | ops | procurement | business | auditor | admin |
            let marks = Array(cells.dropFirst(2).prefix(roles.count))
            let documented = Set(zip(roles, marks).filter { $0.1 == "✓" }.map(\.0))
            let named = cells[1].split(separator: "`", omittingEmptySubsequences: false).enumerated().filter { $0.offset % 2 == 1 }.compactMap { AdminOperation(rawValue: String($0.element)) }
            #expect(!named.isEmpty, "row names no operation: \(line)")
            covered.formUnion(named)
            for op in named {
                #expect(Authorization.roles(for: op) == documented, "\(op.rawValue): documented \(documented.map(\.rawValue).sorted())")
            }
        }
        #expect(covered == Set(AdminOperation.allCases), "operations missing from the role table: \(Set(AdminOperation.allCases).subtracting(covered))")
    }
}
