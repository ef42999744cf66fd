import Foundation

/// A client certificate made by `TestPKI`: `certPath` holds leaf + issuing CA
/// (what clients present), `leafPath` the leaf alone.
package struct TestCredential: Sendable {
    package var commonName: String
    package var certPath: String
    package var keyPath: String
    package var leafPath: String
    /// Upper-case hex, as `openssl x509 -serial` prints it.
    package var serial: String
}

/// A throwaway PKI built with the `openssl` CLI, in the layout
/// `lanyard-controller init` produces:
///
///     DIR/bundle.pem        root + issuing CA certificates
///     DIR/broker.pem/.key   broker leaf + issuing chain (SAN DNS:localhost, IP:127.0.0.1)
///     DIR/controller.pem/.key  client cert CN=lanyard-controller
///     DIR/crl.pem           CRL of the issuing CA (empty at first)
///
/// Keys are P-256. `@unchecked Sendable`: paths are immutable; `revoke`
/// serialises its writes with a lock.
package final class TestPKI: @unchecked Sendable {
    package let directory: String
    package var bundlePath: String { directory + "/bundle.pem" }
    package var rootCertPath: String { directory + "/root.crt" }
    package var issuingCertPath: String { directory + "/issuing.crt" }
    package var issuingKeyPath: String { directory + "/issuing.key" }
    package var brokerCertPath: String { directory + "/broker.pem" }
    package var brokerKeyPath: String { directory + "/broker.key" }
    package var controllerCertPath: String { directory + "/controller.pem" }
    package var controllerKeyPath: String { directory + "/controller.key" }
    package var crlPath: String { directory + "/crl.pem" }
    package var controller: TestCredential {
        TestCredential(
            commonName: "lanyard-controller", certPath: controllerCertPath, keyPath: controllerKeyPath,
            leafPath: directory + "/controller.crt", serial: controllerSerial)
    }

    private let controllerSerial: String
    private let lock = NSLock()

    /// Creates the PKI in `directory` (default: a fresh temporary directory).
    package init(directory: String? = nil) throws {
        let dir = directory ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("lanyard-pki-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: dir + "/devices", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: dir + "/ca", withIntermediateDirectories: true)
        self.directory = dir
        try Self.extensions.write(toFile: dir + "/ext.cnf", atomically: true, encoding: .utf8)
        try Self.caConfig(dir).write(toFile: dir + "/ca.cnf", atomically: true, encoding: .utf8)
        _ = FileManager.default.createFile(atPath: dir + "/ca/index.txt", contents: nil)
        try "1000\n".write(toFile: dir + "/ca/crlnumber", atomically: true, encoding: .utf8)

        try Self.makeKey(dir + "/root.key")
        try TestProcess.check("openssl", [
            "req", "-new", "-x509", "-key", dir + "/root.key", "-subj", "/CN=Lanyard Test Root CA", "-days", "30",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            "-out", dir + "/root.crt",
        ])
        try Self.makeKey(dir + "/issuing.key")
        _ = try Self.sign(
            dir: dir, key: dir + "/issuing.key", subject: "Lanyard Test Issuing CA", section: "issuing",
            caCert: dir + "/root.crt", caKey: dir + "/root.key", out: dir + "/issuing.crt")
        try Self.concatenate([dir + "/root.crt", dir + "/issuing.crt"], to: dir + "/bundle.pem")

        try Self.makeKey(dir + "/broker.key")
        _ = try Self.sign(
            dir: dir, key: dir + "/broker.key", subject: "localhost", section: "server",
            caCert: dir + "/issuing.crt", caKey: dir + "/issuing.key", out: dir + "/broker.crt")
        try Self.concatenate([dir + "/broker.crt", dir + "/issuing.crt"], to: dir + "/broker.pem")

        try Self.makeKey(dir + "/controller.key")
        controllerSerial = try Self.sign(
            dir: dir, key: dir + "/controller.key", subject: "lanyard-controller", section: "client",
            caCert: dir + "/issuing.crt", caKey: dir + "/issuing.key", out: dir + "/controller.crt")
        try Self.concatenate([dir + "/controller.crt", dir + "/issuing.crt"], to: dir + "/controller.pem")

        try TestProcess.check("openssl", ["ca", "-config", dir + "/ca.cnf", "-gencrl", "-out", dir + "/crl.pem"])
    }

    /// Issues a device (client) certificate CN=`id` from the issuing CA.
    /// Each call makes a new key and certificate (unique file names).
    package func issueDevice(_ id: String) throws -> TestCredential {
        try issue(commonName: id, caCert: issuingCertPath, caKey: issuingKeyPath, chain: [issuingCertPath])
    }

    /// A client certificate CN=`id` from a separate CA that the broker does
    /// not trust (same shape as a real one).
    package func issueUntrustedDevice(_ id: String) throws -> TestCredential {
        let rogue = directory + "/rogue"
        if !FileManager.default.fileExists(atPath: rogue + "/ca.crt") {
            try FileManager.default.createDirectory(atPath: rogue, withIntermediateDirectories: true)
            try Self.makeKey(rogue + "/ca.key")
            try TestProcess.check("openssl", [
                "req", "-new", "-x509", "-key", rogue + "/ca.key", "-subj", "/CN=Lanyard Test Issuing CA",
                "-days", "30", "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign", "-out", rogue + "/ca.crt",
            ])
        }
        return try issue(commonName: id, caCert: rogue + "/ca.crt", caKey: rogue + "/ca.key", chain: [rogue + "/ca.crt"])
    }

    /// Adds `credential` to the issuing CA's CRL and rewrites `crlPath`
    /// (atomically). The broker reads it on SIGHUP.
    package func revoke(_ credential: TestCredential) throws {
        lock.lock()
        defer { lock.unlock() }
        try TestProcess.check("openssl", ["ca", "-config", directory + "/ca.cnf", "-revoke", credential.leafPath])
        try TestProcess.check("openssl", ["ca", "-config", directory + "/ca.cnf", "-gencrl", "-out", crlPath + ".tmp"])
        guard rename(crlPath + ".tmp", crlPath) == 0 else { throw CocoaError(.fileWriteUnknown) }
    }

    /// Deletes the directory.
    package func remove() {
        try? FileManager.default.removeItem(atPath: directory)
    }

    private func issue(commonName: String, caCert: String, caKey: String, chain: [String]) throws -> TestCredential {
        let base = directory + "/devices/\(commonName)-\(UUID().uuidString.prefix(8))"
        try Self.makeKey(base + ".key")
        let serial = try Self.sign(
            dir: directory, key: base + ".key", subject: commonName, section: "client",
            caCert: caCert, caKey: caKey, out: base + ".crt")
        try Self.concatenate([base + ".crt"] + chain, to: base + ".pem")
        return TestCredential(
            commonName: commonName, certPath: base + ".pem", keyPath: base + ".key", leafPath: base + ".crt",
            serial: serial)
    }

    // MARK: openssl

    private static func makeKey(_ path: String) throws {
        try TestProcess.check("openssl", [
            "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path,
        ])
        chmod(path, 0o600)
    }

    /// Signs a certificate for `key`; returns its serial (upper-case hex).
    private static func sign(
        dir: String, key: String, subject: String, section: String, caCert: String, caKey: String, out: String
    ) throws -> String {
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in bytes.indices { bytes[i] = UInt8.random(in: 0...255) }
        bytes[0] &= 0x7F
        bytes[0] |= 0x10  // positive, and no leading zero byte to trim
        let serial = bytes.map { String(format: "%02X", $0) }.joined()
        let csr = try TestProcess.check("openssl", ["req", "-new", "-key", key, "-subj", "/CN=\(subject)"]).stdout
        try TestProcess.check("openssl", [
            "x509", "-req", "-CA", caCert, "-CAkey", caKey, "-set_serial", "0x" + serial, "-days", "10",
            "-extfile", dir + "/ext.cnf", "-extensions", section, "-out", out,
        ], stdin: csr)
        return serial
    }

    private static func concatenate(_ files: [String], to path: String) throws {
        var data = Data()
        for file in files { data.append(try Data(contentsOf: URL(fileURLWithPath: file))) }
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    private static let extensions = """
        [issuing]
        basicConstraints=critical,CA:TRUE,pathlen:0
        keyUsage=critical,keyCertSign,cRLSign
        subjectKeyIdentifier=hash
        authorityKeyIdentifier=keyid
        [server]
        basicConstraints=critical,CA:FALSE
        keyUsage=critical,digitalSignature
        extendedKeyUsage=serverAuth
        subjectAltName=DNS:localhost,IP:127.0.0.1
        authorityKeyIdentifier=keyid
        [client]
        basicConstraints=critical,CA:FALSE
        keyUsage=critical,digitalSignature
        extendedKeyUsage=clientAuth
        authorityKeyIdentifier=keyid

        """

    private static func caConfig(_ dir: String) -> String {
        """
        [ca]
        default_ca = CA_default
        [CA_default]
        database = \(dir)/ca/index.txt
        crlnumber = \(dir)/ca/crlnumber
        certificate = \(dir)/issuing.crt
        private_key = \(dir)/issuing.key
        default_md = sha256
        default_crl_days = 30
        crl_extensions = crl_ext
        [crl_ext]
        authorityKeyIdentifier = keyid

        """
    }
}
