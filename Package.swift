// swift-tools-version:6.0
import PackageDescription

// Three floors: C system libraries at the bottom, `Shared` above them, and the
// agent, the controller and `lanyardctl` on top. Agent and Controller never
// import each other; `lanyardctl` sees only `Shared`.
let package = Package(
    name: "Lanyard",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "lanyard-agent", targets: ["lanyard-agent"]),
        .executable(name: "lanyard-controller", targets: ["lanyard-controller"]),
        .executable(name: "lanyardctl", targets: ["lanyardctl"]),
        .executable(name: "lanyard-fleetsim", targets: ["lanyard-fleetsim"]),
    ],
    targets: [
        // C libraries from Debian, through pkg-config.
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(name: "CMosquitto", pkgConfig: "libmosquitto", providers: [.apt(["libmosquitto-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        // The controller's HTTPS admin API (TLS through GnuTLS).
        .systemLibrary(name: "CMicroHTTPD", pkgConfig: "libmicrohttpd", providers: [.apt(["libmicrohttpd-dev"])]),
        // glibc calls the Glibc module does not export (malloc_trim); headers only.
        .systemLibrary(name: "CLinux"),

        .target(name: "Shared", dependencies: ["COpenSSL", "CMosquitto", "CLinux"]),
        .target(name: "Agent", dependencies: ["Shared"]),
        .target(name: "Controller", dependencies: ["Shared", "CSQLite", "CMicroHTTPD"]),

        .executableTarget(name: "lanyard-agent", dependencies: ["Agent"]),
        .executableTarget(name: "lanyard-controller", dependencies: ["Controller"]),
        .executableTarget(name: "lanyardctl", dependencies: ["Shared"]),
        // Benchmarks (`make bench`): figures, never timed assertions.
        .executableTarget(name: "lanyard-bench", dependencies: ["Controller", "Shared"]),
        // Fleet simulator: many virtual devices speaking the real protocol
        // (the agent's reply checks, Shared's command verification).
        .target(name: "FleetSim", dependencies: ["Agent", "Shared"]),
        .executableTarget(name: "lanyard-fleetsim", dependencies: ["FleetSim", "Shared"]),

        .target(name: "TestSupport", dependencies: ["Shared"], path: "Tests/TestSupport"),
        .testTarget(name: "SharedTests", dependencies: ["Shared", "TestSupport"], exclude: ["python"]),
        .testTarget(name: "ControllerTests", dependencies: ["Controller", "Shared", "TestSupport"]),
        .testTarget(name: "AgentTests", dependencies: ["Agent", "Shared", "TestSupport"]),
        .testTarget(name: "IntegrationTests", dependencies: ["Shared", "TestSupport"], exclude: ["python"]),
    ],
    swiftLanguageModes: [.v6]
)
