import AgentConfig
import Glibc
import IstioCA
import Logging
import SecretDiscovery
import TextFiles
import WorkloadIdentity

/// Where the workload certificate comes from and where SDS listens, decided at start so that every
/// configuration problem (a missing CA root, a bad key size, an unreadable local CA) stops the agent
/// before anything runs, with exit 2.
struct SecretsPlan: Sendable {
    var store: SecretStoreConfiguration
    /// The workload socket on disk.
    var socketPath: String
    /// Where file secrets are served when another SDS server (SPIRE) owns the workload socket.
    var filesSocketPath: String
    /// How the certificate is obtained, for the start-up log.
    var summary: String

    static func make(_ configuration: AgentConfiguration, logger: Logger) throws(AgentStartupError) -> SecretsPlan {
        let paths = configuration.paths
        let settings = configuration.options.certificates
        let socketPath = paths.filesystemPath(paths.workloadSocket)
        let filesSocketPath = paths.filesystemPath(AgentPaths.filesCredentialSocket)
        let crlPath = settings.enableCRL ? paths.filesystemPath(CertificateSettings.crlFile) : nil
        let outputDirectory = settings.outputDirectory.map { paths.filesystemPath($0) }
        // Istio writes OUTPUT_CERTS world-readable in Kubernetes, where another container reads them.
        let outputMode: UInt32 = configuration.environment["KUBERNETES_SERVICE_HOST"] == nil ? 0o600 : 0o644

        func plan(_ workload: SecretStoreConfiguration.WorkloadSource, _ summary: String) -> SecretsPlan {
            SecretsPlan(store: SecretStoreConfiguration(workload: workload, crlPath: crlPath, outputDirectory: outputDirectory,
                                                        outputFileMode: outputMode),
                        socketPath: socketPath, filesSocketPath: filesSocketPath, summary: summary)
        }

        // 1. Credentials mounted for the workload (SPIFFE CSI drivers): all three files present.
        let mounted = SecretStoreConfiguration.CredentialFiles(directory: paths.filesystemPath(AgentPaths.workloadCredentialsDirectory))
        let mountedPaths: [String] = [mounted.certificateChain, mounted.key, mounted.roots]
        if mountedPaths.allSatisfy({ path in access(path, F_OK) == 0 }) {
            return plan(.files(mounted), "mounted credentials in \(paths.filesystemPath(AgentPaths.workloadCredentialsDirectory))")
        }
        let etcCerts = SecretStoreConfiguration.CredentialFiles(directory: paths.filesystemPath(CertificateSettings.etcCertsDirectory))
        // 2. Files written by someone else, no CA.
        if settings.fileMountedCertificates || settings.provider == .mountedFiles {
            return plan(.files(etcCerts), "mounted certificates in \(paths.filesystemPath(CertificateSettings.etcCertsDirectory))"
                + (settings.fileMountedCertificates ? " (FILE_MOUNTED_CERTS)" : " (CA_PROVIDER=GkeWorkloadCertificate)"))
        }

        // 3. CSRs to a CA.
        let identity = SpiffeIdentity(trustDomain: configuration.identity.trustDomain,
                                      namespace: configuration.identity.podNamespace,
                                      serviceAccount: configuration.identity.serviceAccount.isEmpty ? "default" : configuration.identity.serviceAccount)
        let keyAlgorithm: WorkloadKeyAlgorithm
        let rotation: RotationPolicy
        do {
            keyAlgorithm = try WorkloadKeyAlgorithm.fromIstioSettings(
                eccSignatureAlgorithm: settings.eccSignatureAlgorithm, eccCurve: settings.eccCurve, rsaKeySize: settings.rsaKeySize)
            rotation = try RotationPolicy(graceRatio: settings.gracePeriodRatio, jitter: settings.gracePeriodRatioJitter)
        } catch {
            throw .configuration(error.description)
        }
        let signer: any CertificateSigner
        let signerName: String
        switch settings.provider {
        case .local:
            let directory = paths.filesystemPath(settings.localCADirectory)
            signer = try LocalCADirectory.loadOrCreate(directory, trustDomain: identity.trustDomain, logger: logger)
            signerName = "local CA in \(directory)"
        case .istioCA, .mountedFiles:
            let roots = try caRoots(settings, paths: paths)
            var client = IstioCAClientConfiguration(
                address: settings.caAddress, rootCertificatesPEM: roots, serverName: settings.istiodSAN,
                tokenPath: paths.filesystemPath(AgentPaths.istioToken), clusterID: configuration.identity.clusterID,
                extraHeaders: configuration.options.caHeaders, certSigner: settings.certSigner)
            client.callTimeout = .seconds(10)
            do {
                signer = try IstioCAClient(configuration: client, logger: Logger(label: "ca"))
            } catch {
                throw .configuration("CA_ADDR: \(error)")
            }
            signerName = "Istio CA at \(settings.caAddress)"
        }
        // Istio serves ./etc/certs instead of a CSR when it is there, unless OUTPUT_CERTS writes into it.
        let preferred = outputDirectory.map { normalized($0) } == normalized(paths.filesystemPath(CertificateSettings.etcCertsDirectory))
            ? nil : etcCerts
        let signing = SecretStoreConfiguration.Signing(
            signer: signer, signerName: signerName, identity: identity, keyAlgorithm: keyAlgorithm, pkcs8: settings.pkcs8Key,
            ttl: settings.ttl, rotation: rotation, preferredFiles: preferred)
        return plan(.signing(signing), "\(identity) from the \(signerName), \(keyAlgorithm) keys, TTL \(settings.ttl.components.seconds)s")
    }

    /// Istio's `FindRootCAForCA`: CA_ROOT_CA (or SYSTEM), then ./etc/certs when PILOT_CERT_PROVIDER=custom,
    /// then PROV_CERT, then the istio-ca-root-cert ConfigMap's file. Port 15010 is plaintext: no root.
    static func caRoots(_ settings: CertificateSettings, paths: AgentPaths) throws(AgentStartupError) -> String? {
        if settings.caAddress.hasSuffix(":15010") { return nil }
        let candidate: (path: String, source: String)
        if let rootCA = settings.caRootCA {
            if rootCA == "SYSTEM" {
                guard let bundle = SecretResource.systemBundleCandidates.first(where: { access($0, R_OK) == 0 }) else {
                    throw .configuration("CA_ROOT_CA=SYSTEM but this system has no CA bundle (looked for "
                        + SecretResource.systemBundleCandidates.joined(separator: ", ") + ")")
                }
                candidate = (bundle, "CA_ROOT_CA=SYSTEM")
            } else {
                candidate = (paths.filesystemPath(rootCA), "CA_ROOT_CA")
            }
        } else if settings.pilotCertProvider == "custom" {
            candidate = (paths.filesystemPath(CertificateSettings.etcCertsDirectory + "/root-cert.pem"), "PILOT_CERT_PROVIDER=custom")
        } else if let provisioning = settings.provisioningCertificateDirectory,
                  access(paths.filesystemPath(provisioning + "/root-cert.pem"), R_OK) == 0 {
            candidate = (paths.filesystemPath(provisioning + "/root-cert.pem"), "PROV_CERT")
        } else {
            candidate = (paths.filesystemPath(CertificateSettings.istioCARootFile), "the istio-ca-root-cert ConfigMap")
        }
        let text: String
        do {
            text = try TextFile.read(candidate.path, limit: 4 << 20)
        } catch {
            throw .configuration("cannot read the CA's root certificate \(error) (from \(candidate.source)): mount the "
                + "istio-ca-root-cert ConfigMap there, set CA_ROOT_CA, or set CA_PROVIDER=local for a mesh without istiod")
        }
        guard text.contains("-----BEGIN CERTIFICATE-----") else {
            throw .configuration("the CA's root \(candidate.path) (from \(candidate.source)) holds no PEM certificate")
        }
        return text
    }

    private static func normalized(_ path: String) -> String {
        var text = Substring(path)
        while text.count > 1, text.hasSuffix("/") { text = text.dropLast() }
        return String(text)
    }
}

/// CA_PROVIDER=local keeps its root in a directory: created on first start (key 0600), reused after,
/// so every agent pointed at the same directory issues from the same root.
enum LocalCADirectory {
    static let certificateFile = "root-cert.pem"
    static let keyFile = "root-key.pem"

    static func loadOrCreate(_ directory: String, trustDomain: String, logger: Logger) throws(AgentStartupError) -> LocalCertificateAuthority {
        let certificatePath = directory + "/" + certificateFile
        let keyPath = directory + "/" + keyFile
        let certificateText: String?
        let keyText: String?
        do {
            certificateText = try LiveFiles().contents(ofFile: certificatePath)
            keyText = try LiveFiles().contents(ofFile: keyPath)
        } catch {
            throw .configuration("local CA (SLUICE_LOCAL_CA_DIR): \(error)")
        }
        switch (certificateText, keyText) {
        case (let certificate?, let key?):
            do {
                return try LocalCertificateAuthority(rootCertificatePEM: certificate, rootKeyPEM: key, trustDomain: trustDomain)
            } catch {
                throw .configuration("local CA in \(directory) (SLUICE_LOCAL_CA_DIR): \(error)")
            }
        case (nil, nil):
            let authority: LocalCertificateAuthority
            do {
                authority = try LocalCertificateAuthority.create(trustDomain: trustDomain)
                try TextFile.createDirectory(directory, mode: 0o700)
                // The key first: a root certificate without its key is a half-made CA.
                try TextFile.writeAtomically(authority.rootKeyPEM, to: keyPath, mode: 0o600)
                try TextFile.writeAtomically(authority.rootCertificatePEM, to: certificatePath, mode: 0o644)
            } catch {
                throw .environment("local CA: cannot create a root in \(directory) (SLUICE_LOCAL_CA_DIR): \(error)")
            }
            logger.info("local CA: created a root for trust domain \(trustDomain) in \(directory)")
            return authority
        default:
            throw .configuration("local CA in \(directory) (SLUICE_LOCAL_CA_DIR) has only one of \(certificateFile) and \(keyFile): "
                + "restore the other, or remove both to create a new root")
        }
    }
}
