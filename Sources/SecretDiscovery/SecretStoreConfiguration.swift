import WorkloadIdentity

/// Where the workload's certificate comes from, chosen as Istio chooses (SDS.md §3); the agent
/// resolves it from the environment and the files present.
public struct SecretStoreConfiguration: Sendable {
    /// A certificate chain, its key and the roots, as three files.
    public struct CredentialFiles: Sendable, Hashable, CustomStringConvertible {
        public var certificateChain: String
        public var key: String
        public var roots: String

        public init(certificateChain: String, key: String, roots: String) {
            self.certificateChain = certificateChain
            self.key = key
            self.roots = roots
        }

        /// Istio's names in a directory: cert-chain.pem, key.pem, root-cert.pem.
        public init(directory: String) {
            let prefix = directory.hasSuffix("/") ? directory : directory + "/"
            self.init(certificateChain: prefix + "cert-chain.pem", key: prefix + "key.pem", roots: prefix + "root-cert.pem")
        }

        public var description: String { "\(certificateChain), \(key), \(roots)" }
    }

    /// CSRs to a CA: a fresh key per request, the chain checked, rotation before expiry.
    public struct Signing: Sendable {
        public var signer: any CertificateSigner
        /// Names the CA in logs and errors ("Istio CA at istiod.istio-system.svc:15012", "local CA").
        public var signerName: String
        public var identity: SpiffeIdentity
        public var keyAlgorithm: WorkloadKeyAlgorithm
        /// PKCS8_KEY: serve the key as PKCS#8 instead of SEC1/PKCS#1.
        public var pkcs8: Bool
        /// SECRET_TTL: the lifetime asked for (the CA may shorten it).
        public var ttl: Duration
        public var rotation: RotationPolicy
        /// Istio's `./etc/certs`: when its chain and key are there (non-empty), `default` and `ROOTCA`
        /// are served from them instead of a CSR, and they are watched.
        public var preferredFiles: CredentialFiles?
        /// A failed CSR is retried from this delay, doubling up to `retryCeiling` (Istio: 500 ms to 60 s).
        public var retryFloor: Duration
        public var retryCeiling: Duration

        public init(signer: any CertificateSigner, signerName: String, identity: SpiffeIdentity,
                    keyAlgorithm: WorkloadKeyAlgorithm = .rsa(bits: 2048), pkcs8: Bool = false,
                    ttl: Duration = .seconds(86400), rotation: RotationPolicy, preferredFiles: CredentialFiles? = nil,
                    retryFloor: Duration = .milliseconds(500), retryCeiling: Duration = .seconds(60)) {
            self.signer = signer
            self.signerName = signerName
            self.identity = identity
            self.keyAlgorithm = keyAlgorithm
            self.pkcs8 = pkcs8
            self.ttl = ttl
            self.rotation = rotation
            self.preferredFiles = preferredFiles
            self.retryFloor = retryFloor
            self.retryCeiling = retryCeiling
        }
    }

    public enum WorkloadSource: Sendable {
        /// Mounted files (workload-spiffe-credentials, or FILE_MOUNTED_CERTS): no CA, no rotation of
        /// Sluice's own; the files are watched and reloaded.
        case files(CredentialFiles)
        case signing(Signing)
    }

    public var workload: WorkloadSource
    /// PILOT_ENABLE_CA_CRL: the CRL file named in `ROOTCA` when it exists.
    public var crlPath: String?
    /// OUTPUT_CERTS: the directory the current key.pem, cert-chain.pem and root-cert.pem are written to.
    public var outputDirectory: String?
    /// 0600, or 0644 in Kubernetes where another container reads them (as Istio).
    public var outputFileMode: UInt32
    /// How often watched files are checked. A stat of a few files is cheap, and polling sees kubelet's
    /// `..data` symlink swaps and editors' renames alike, which per-file inotify watches miss.
    public var fileCheckInterval: Duration
    /// Where `file-root:system` looks, first existing wins.
    public var systemBundleCandidates: [String]

    public init(workload: WorkloadSource, crlPath: String? = nil, outputDirectory: String? = nil,
                outputFileMode: UInt32 = 0o600, fileCheckInterval: Duration = .milliseconds(250),
                systemBundleCandidates: [String] = SecretResource.systemBundleCandidates) {
        self.workload = workload
        self.crlPath = crlPath
        self.outputDirectory = outputDirectory
        self.outputFileMode = outputFileMode
        self.fileCheckInterval = fileCheckInterval
        self.systemBundleCandidates = systemBundleCandidates
    }
}
