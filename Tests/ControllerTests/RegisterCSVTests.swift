import Foundation
import Testing

@testable import Controller
import Shared

private let ops = AdminActor(name: "ot-ops", roles: [.ops], auditName: "operator:ot-ops")
private let header = "id,class,vendor,site,zone,tags,owner_identity,owner_secarch,owner_ops,owner_procurement,owner_business\n"

@Suite("CSV import and export of the register")
struct RegisterCSVTests {
    func importCSV(_ f: ControllerFixture, _ csv: String, dryRun: Bool = false) throws -> CSVImportResult {
        try f.call(.registerImport, CSVImportParams(csv: csv, dryRun: dryRun), as: CSVImportResult.self, actor: ops)
    }

    @Test("a file with one bad row applies nothing and names that row's line")
    func oneBadRow() throws {
        let f = try ControllerFixture()
        let csv = header
            + "gw-1,sensor,,plant-a,ot,line-1,pki,sec,ops,buy,biz\n"
            + "gw-2,sensor,,plant-a,ot,,pki,sec,ops,buy,biz\n"
            + "gw-3,sensor,,plant-a,dmz,,pki,sec,ops,buy,biz\n"  // line 4: bad zone
            + "gw-4,sensor,,plant-b,it,,pki,sec,ops,buy,biz\n"
        let r = try importCSV(f, csv)
        #expect(!r.applied)
        #expect(r.problems.map(\.line) == [4])
        #expect(r.problems.first?.message.contains("zone") == true)
        #expect(try f.sqlite("SELECT count(*) FROM devices") == "0\n")
        #expect(try f.sqlite("SELECT outcome || ' ' || detail FROM audit WHERE action = 'register.import'") == "invalid_rows bad_rows=4\n")
    }

    @Test("every bad row is reported with its line: unknown class, bad id, duplicate, wrong field count; a quoted line break counts")
    func manyBadRows() throws {
        let f = try ControllerFixture()
        let csv = header
            + "gw-1,sensor,,\"plant a,\nnorth\",ot,,pki,sec,ops,buy,biz\n"  // lines 2-3: a line break in a site
            + "gw-2,nope,,x,ot,,pki,sec,ops,buy,biz\n"  // line 4
            + "GW/3,sensor,,x,ot,,pki,sec,ops,buy,biz\n"  // line 5
            + "gw-1,sensor,,x,ot,,pki,sec,ops,buy,biz\n"  // line 6: duplicate of line 2
            + "gw-5,sensor,,x\n"  // line 7
            + "gw-6,sensor,Unknown Vendor,x,ot,,pki,sec,ops,buy,biz\n"  // line 8
        let r = try importCSV(f, csv)
        #expect(r.problems.map(\.line) == [2, 4, 5, 6, 7, 8], "\(r.problems)")
        #expect(try f.sqlite("SELECT count(*) FROM devices") == "0\n")
    }

    @Test("a good file creates and updates; export lists it; a dry run applies nothing; existing owners may not change by import")
    func goodImportAndExport() throws {
        let f = try ControllerFixture()
        try f.add("gw-0")
        #expect(try importCSV(f, header + "gw-1,sensor,,plant-a,ot,,pki,sec,ops,buy,biz\n", dryRun: true).applied == false)
        #expect(try f.sqlite("SELECT count(*) FROM devices") == "1\n")
        let r = try importCSV(f, header
            + "gw-0,sensor,,plant-z,it,,pki-team,sec-arch,ot-ops,buyers,plant-manager\n"
            + "gw-1,sensor,,plant-a,ot,press;line-1,pki,sec,ops,buy,biz\n")
        #expect(r.applied && r.created == 1 && r.updated == 1, "\(r)")
        #expect(try f.register.show("gw-0").attributes?.site == "plant-z")
        #expect(try f.register.show("gw-1").attributes?.tags == ["line-1", "press"])
        let changedOwner = try importCSV(f, header + "gw-1,sensor,,plant-a,ot,,pki,sec,ops,buy,someone-else\n")
        #expect(changedOwner.problems.map(\.line) == [2])
        let export = try f.call(.registerExport, Empty(), as: CSVExport.self, actor: ops).csv
        let lines = export.split(separator: "\r\n")
        #expect(lines.first?.hasPrefix("id,class,vendor,model,hardware_serial,firmware,site,zone,tags,bootstrap_method,owner_identity") == true)
        #expect(lines.count == 3)
        #expect(lines[2].hasPrefix("gw-1,sensor,,,,,plant-a,ot,line-1;press,token,pki,sec,ops,buy,biz,registered"))
        // The export imports again unchanged (all rows update, nothing created).
        let again = try importCSV(f, export)
        #expect(again.applied && again.created == 0 && again.updated == 2, "\(again.problems)")
    }

    @Test("a malformed file (unclosed quote, unknown column) is reported without applying anything")
    func malformed() throws {
        let f = try ControllerFixture()
        #expect(try importCSV(f, header + "gw-1,sensor,,\"unclosed,ot,,a,b,c,d,e\n").problems.map(\.line) == [2])
        #expect(try importCSV(f, "id,class,colour\ngw-1,sensor,red\n").problems.map(\.line) == [1])
    }
}
