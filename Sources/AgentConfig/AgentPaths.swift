/// Istio's file layout, relocated under a root directory. Istio's image runs with `WORKDIR /` and names its
/// files `./etc/...` and `./var/...`; with `--root <dir>` (or `SLUICE_ROOT`) the same names live under
/// `<dir>`, so the agent can run unprivileged in tests and demos.
///
/// Paths are kept in Istio's form (`./etc/istio/proxy`); `filesystemPath` gives where a file is on disk
/// and `bootstrapPath` what to write into the data plane's bootstrap (unchanged when the root is `/`, so a
/// bootstrap under `/` is byte-for-byte what Istio writes).
public struct AgentPaths: Sendable, Equatable {
    public static let defaultConfigDirectory = "./etc/istio/proxy"
    public static let bootstrapFileName = "envoy-rev.json"
    /// The agent's XDS proxy socket, `<configPath>/XDS`.
    public static let xdsSocketFileName = "XDS"
    public static let workloadSocketDirectory = "./var/run/secrets/workload-spiffe-uds"
    public static let defaultWorkloadSocketFileName = "socket"
    public static let credentialSocketDirectory = "./var/run/secrets/credential-uds"
    public static let filesCredentialSocket = "./var/run/secrets/credential-uds/files-socket"
    public static let workloadCredentialsDirectory = "./var/run/secrets/workload-spiffe-credentials"
    public static let podLabels = "./etc/istio/pod/labels"
    public static let podAnnotations = "./etc/istio/pod/annotations"
    public static let defaultMeshConfig = "./etc/istio/config/mesh"
    public static let istioToken = "./var/run/secrets/tokens/istio-token"
    public static let istioRootCertificate = "./var/run/secrets/istio/root-cert.pem"
    public static let defaultBootstrapTemplate = "./var/lib/istio/envoy/envoy_bootstrap_tmpl.json"
    public static let defaultGRPCBootstrap = "./etc/istio/proxy/grpc-bootstrap.json"
    public static let istioDataDirectory = "./var/lib/istio/data"
    /// The DNS proxy's name table (Sluice's stand-in for istiod's NDS pushes).
    public static let defaultNameTable = "./etc/istio/proxy/name-table.json"

    /// Absolute, without a trailing slash unless it is `/`.
    public var root: String
    /// ProxyConfig.configPath (Istio form).
    public var configDirectory: String
    /// `--meshConfig`.
    public var meshConfig: String
    /// `./var/run/secrets/workload-spiffe-uds/<WORKLOAD_IDENTITY_SOCKET_FILE>`.
    public var workloadSocket: String

    public init(
        root: String = "/",
        configDirectory: String = Self.defaultConfigDirectory,
        meshConfig: String = Self.defaultMeshConfig,
        workloadSocketFileName: String = Self.defaultWorkloadSocketFileName
    ) {
        self.root = Self.normalizedRoot(root)
        self.configDirectory = configDirectory
        self.meshConfig = meshConfig
        self.workloadSocket = Self.join(Self.workloadSocketDirectory, workloadSocketFileName)
    }

    /// `<configPath>/envoy-rev.json`.
    public var bootstrap: String { Self.join(configDirectory, Self.bootstrapFileName) }
    /// `<configPath>/XDS`.
    public var xdsSocket: String { Self.join(configDirectory, Self.xdsSocketFileName) }

    /// Where an Istio path is on disk: `./etc/x` (or `etc/x`) under the root; absolute paths stay as they are.
    public func filesystemPath(_ istioPath: String) -> String {
        if istioPath.hasPrefix("/") { return istioPath }
        var relative = Substring(istioPath)
        while relative.hasPrefix("./") { relative = relative.dropFirst(2) }
        if relative == "." { relative = "" }
        if relative.isEmpty { return root }
        return root == "/" ? "/" + relative : root + "/" + relative
    }

    /// The text to write into the bootstrap for an Istio path: unchanged when the root is `/` (the data
    /// plane runs in `/` as Istio's does), else the absolute path under the root, since the data plane's
    /// working directory is not the root.
    public func bootstrapPath(_ istioPath: String) -> String {
        root == "/" ? istioPath : filesystemPath(istioPath)
    }

    static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    static func normalizedRoot(_ root: String) -> String {
        var trimmed = Substring(root)
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
        return trimmed.isEmpty ? "/" : String(trimmed)
    }
}
