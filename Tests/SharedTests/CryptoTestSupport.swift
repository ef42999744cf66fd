import Foundation
import TestSupport
import Testing

import Shared

// Helpers for the Crypto* suites: a throwaway PKI built with our own API, and a
// runner for the independent tools (/usr/bin/openssl, python3 + PyJWT) that the
// results are checked against. A missing tool fails the test; it never skips.

/// The two clocks every PKI test runs under: a fixed reference time and the real now.
enum CryptoTestClock: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case fixedReference, now

    /// 2025-06-15T16:26:40Z for `.fixedReference`.
    var date: Date {
        switch self {
        case .fixedReference: return Date(timeIntervalSince1970: 1_750_004_800)
        case .now: return Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
        }
    }

    var testDescription: String { rawValue }
}

struct CryptoToolResult {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// A private temporary directory (0700), removed by `remove()`.
struct CryptoTempDir {
    let url: URL

    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("lanyard-crypto-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
    }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// Writes `text` with the given mode (0600 by default: some files hold private keys).
    @discardableResult
    func write(_ name: String, _ text: String, mode: Int = 0o600) throws -> String {
        let file = path(name)
        guard FileManager.default.createFile(atPath: file, contents: Data(text.utf8), attributes: [.posixPermissions: mode]) else {
            throw CryptoError(code: "test_io", message: "cannot write \(file)")
        }
        return file
    }

    func read(_ name: String) throws -> String { try String(contentsOfFile: path(name), encoding: .utf8) }

    func readBytes(_ name: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: url.appendingPathComponent(name))) }

    func write(_ name: String, bytes: [UInt8]) throws {
        guard FileManager.default.createFile(atPath: path(name), contents: Data(bytes), attributes: [.posixPermissions: 0o600]) else {
            throw CryptoError(code: "test_io", message: "cannot write \(path(name))")
        }
    }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

enum CryptoTools {
    static let openssl = "/usr/bin/openssl"
    static var pythonHelper: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("python/jws_tool.py").path
    }

    /// Runs `/usr/bin/openssl args...`; records an issue (test failure) if the tool is absent.
    static func openssl(_ args: [String], in dir: CryptoTempDir) throws -> CryptoToolResult {
        try #require(FileManager.default.isExecutableFile(atPath: openssl), "openssl is required at \(openssl)")
        return try run(openssl, args, in: dir)
    }

    /// Runs `python3 args...` via /usr/bin/env. A missing python3 or PyJWT gives a non-zero status.
    static func python(_ args: [String], in dir: CryptoTempDir) throws -> CryptoToolResult {
        try #require(FileManager.default.isExecutableFile(atPath: "/usr/bin/env"))
        try #require(FileManager.default.fileExists(atPath: pythonHelper), "missing \(pythonHelper)")
        return try run("/usr/bin/env", ["python3"] + args, in: dir)
    }

    static func run(_ executable: String, _ args: [String], in dir: CryptoTempDir) throws -> CryptoToolResult {
        let result = try TestProcess.run(executable, args, currentDirectory: dir.url.path, timeout: 60)
        return CryptoToolResult(status: result.exitCode, stdout: result.stdout, stderr: result.stderr)
    }
}

/// Root CA → issuing CA → device leaf, all made with our API around `now`.
struct CryptoTestPKI {
    static let trustDomain = "lanyard.test"
    let now: Date
    let rootKey: PrivateKey
    let root: Certificate
    let issuingKey: PrivateKey
    let issuing: Certificate

    init(now: Date, rootName: String = "Lanyard Test Root") throws {
        self.now = now
        rootKey = try PrivateKey.generateP256()
        var rootTemplate = CertificateTemplate(
            commonName: rootName, serial: CertificateTemplate.randomSerial(),
            notBefore: now.addingTimeInterval(-86_400), notAfter: now.addingTimeInterval(10 * 365 * 86_400))
        rootTemplate.organization = "Lanyard Tests"
        rootTemplate.isCA = true
        rootTemplate.pathLength = 1
        rootTemplate.keyUsage = [.keyCertSign, .cRLSign]
        root = try CertificateIssuer.sign(rootTemplate, subjectKey: rootKey.publicKey, issuer: nil, issuerKey: rootKey)

        issuingKey = try PrivateKey.generateP256()
        var issuingTemplate = CertificateTemplate(
            commonName: "\(rootName) Issuing", serial: CertificateTemplate.randomSerial(),
            notBefore: now.addingTimeInterval(-3_600), notAfter: now.addingTimeInterval(5 * 365 * 86_400))
        issuingTemplate.isCA = true
        issuingTemplate.pathLength = 0
        issuingTemplate.keyUsage = [.keyCertSign, .cRLSign]
        issuing = try CertificateIssuer.sign(issuingTemplate, subjectKey: issuingKey.publicKey, issuer: root, issuerKey: rootKey)
    }

    static func deviceURI(_ device: String) -> String { "spiffe://\(trustDomain)/device/\(device)" }

    /// A device leaf template: digitalSignature, clientAuth, URI SAN, 30 days from an hour ago.
    func deviceTemplate(_ device: String, lifetime: TimeInterval = 30 * 86_400) -> CertificateTemplate {
        var template = CertificateTemplate(
            commonName: device, serial: CertificateTemplate.randomSerial(),
            notBefore: now.addingTimeInterval(-3_600), notAfter: now.addingTimeInterval(lifetime))
        template.extendedKeyUsages = [ExtendedKeyUsage.clientAuth]
        template.uriSANs = [Self.deviceURI(device)]
        return template
    }

    /// A device key, a CSR for it (through PEM, as it would arrive), and the leaf issued from the CSR's key.
    func issueDevice(_ device: String, template: CertificateTemplate? = nil) throws -> (key: PrivateKey, leaf: Certificate) {
        let key = try PrivateKey.generateP256()
        let csr = try CertificateSigningRequest(pem: CertificateSigningRequest.make(commonName: device, key: key).pem)
        #expect(csr.verifySignature())
        let leaf = try CertificateIssuer.sign(
            template ?? deviceTemplate(device), subjectKey: csr.publicKey, issuer: issuing, issuerKey: issuingKey)
        return (key, leaf)
    }

    /// Writes root.pem and issuing.pem into `dir`.
    func writeCAs(to dir: CryptoTempDir) throws {
        try dir.write("root.pem", root.pem, mode: 0o644)
        try dir.write("issuing.pem", issuing.pem, mode: 0o644)
    }
}
