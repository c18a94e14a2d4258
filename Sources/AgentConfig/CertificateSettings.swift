import Capture

/// Where the workload certificate comes from (SDS.md §3).
public enum CertificateProvider: String, Sendable, Equatable {
    /// Istio's CA (istiod, or anything serving IstioCertificateService): CSR over gRPC and TLS.
    case istioCA = "Citadel"
    /// Sluice's built-in CA, for a mesh without a control plane (demos, VMs, tests).
    case local = "local"
    /// Certificates another component writes as files (GKE workload certificates, cert-manager CSI, ...).
    case mountedFiles = "GkeWorkloadCertificate"

    /// CA_PROVIDER values Istio and Sluice accept.
    static func parse(_ text: String) -> CertificateProvider? {
        switch text {
        case "Citadel", "istiod", "": .istioCA
        case "local", "Local": .local
        case "GkeWorkloadCertificate": .mountedFiles
        default: nil
        }
    }
}

/// The certificate-related environment of `pilot-agent`, read and range-checked; the agent turns it into
/// a secret source at start (Istio's names and defaults, plus CA_PROVIDER=local and SLUICE_LOCAL_CA_DIR).
public struct CertificateSettings: Sendable, Equatable {
    public var provider: CertificateProvider = .istioCA
    /// CA_ADDR, else ProxyConfig discoveryAddress.
    public var caAddress: String = "istiod.istio-system.svc:15012"
    /// CA_ROOT_CA: a file with the CA's roots, or SYSTEM for the OS bundle.
    public var caRootCA: String?
    /// PILOT_CERT_PROVIDER (istiod, kubernetes, custom, none): `custom` takes the CA's root from ./etc/certs.
    public var pilotCertProvider: String = "istiod"
    /// PROV_CERT: a directory with a provisioning certificate (VMs); its root-cert.pem is a CA root candidate.
    public var provisioningCertificateDirectory: String?
    /// ISTIOD_SAN: the name to expect in the CA's certificate, instead of CA_ADDR's host.
    public var istiodSAN: String?
    /// ECC_SIGNATURE_ALGORITHM, ECC_CURVE, WORKLOAD_RSA_KEY_SIZE, PKCS8_KEY.
    public var eccSignatureAlgorithm: String = ""
    public var eccCurve: String = "P256"
    public var rsaKeySize: Int = 2048
    public var pkcs8Key: Bool = false
    /// SECRET_TTL.
    public var ttl: Duration = .seconds(86400)
    /// SECRET_GRACE_PERIOD_RATIO and its jitter.
    public var gracePeriodRatio: Double = 0.5
    public var gracePeriodRatioJitter: Double = 0.01
    /// OUTPUT_CERTS.
    public var outputDirectory: String?
    /// FILE_MOUNTED_CERTS.
    public var fileMountedCertificates: Bool = false
    /// ISTIO_META_CERT_SIGNER.
    public var certSigner: String = ""
    /// SLUICE_LOCAL_CA_DIR: where CA_PROVIDER=local keeps its root (created on first start).
    public var localCADirectory: String = "./var/lib/sluice/ca"
    /// PILOT_ENABLE_CA_CRL: name Istio's CRL file in ROOTCA when it exists.
    public var enableCRL: Bool = true

    public init() {}

    /// Istio's default location for the CA's root (the istio-ca-root-cert ConfigMap).
    public static let istioCARootFile = "./var/run/secrets/istio/root-cert.pem"
    /// Istio's ./etc/certs, served in preference to a CSR when present.
    public static let etcCertsDirectory = "./etc/certs"
    public static let crlFile = "./var/run/secrets/istio/crl/ca-crl.pem"

    static func read(_ env: EnvironmentReader, discoveryAddress: String) throws(AgentConfigError) -> CertificateSettings {
        var settings = CertificateSettings()
        let providerText = env.string("CA_PROVIDER", default: "Citadel")
        guard let provider = CertificateProvider.parse(providerText) else {
            throw AgentConfigError("CA_PROVIDER=\(goQuoted(providerText)) is not supported: use Citadel (Istio's CA), local (Sluice's built-in CA) or GkeWorkloadCertificate (mounted files)")
        }
        settings.provider = provider
        settings.caAddress = env.string("CA_ADDR", default: discoveryAddress)
        settings.caRootCA = env.string("CA_ROOT_CA")
        settings.pilotCertProvider = env.string("PILOT_CERT_PROVIDER", default: "istiod")
        settings.provisioningCertificateDirectory = env.string("PROV_CERT")
        settings.istiodSAN = env.string("ISTIOD_SAN")
        settings.eccSignatureAlgorithm = env.string("ECC_SIGNATURE_ALGORITHM", default: "")
        settings.eccCurve = env.string("ECC_CURVE", default: "P256")
        settings.rsaKeySize = try env.integer("WORKLOAD_RSA_KEY_SIZE", default: 2048, in: 2048...8192,
                                              want: "an RSA key size in bits, 2048 to 8192 (Istio refuses smaller keys)")
        settings.pkcs8Key = try env.bool("PKCS8_KEY", default: false)
        settings.ttl = try env.duration("SECRET_TTL", default: .seconds(86400))
        guard settings.ttl >= .seconds(60) else {
            throw AgentConfigError("SECRET_TTL=\(goQuoted(env.string("SECRET_TTL") ?? "")) is too short: certificates must live at least 1m")
        }
        settings.gracePeriodRatio = try ratio(env, "SECRET_GRACE_PERIOD_RATIO", default: 0.5)
        settings.gracePeriodRatioJitter = try ratio(env, "SECRET_GRACE_PERIOD_RATIO_JITTER", default: 0.01)
        settings.outputDirectory = env.string("OUTPUT_CERTS")
        settings.fileMountedCertificates = try env.bool("FILE_MOUNTED_CERTS", default: false)
        settings.certSigner = env.string("ISTIO_META_CERT_SIGNER", default: "")
        settings.localCADirectory = env.string("SLUICE_LOCAL_CA_DIR", default: settings.localCADirectory)
        settings.enableCRL = try env.bool("PILOT_ENABLE_CA_CRL", default: true)
        return settings
    }

    private static func ratio(_ env: EnvironmentReader, _ name: String, default fallback: Double) throws(AgentConfigError) -> Double {
        guard let text = env.string(name) else { return fallback }
        guard let value = Double(text), value.isFinite, (0...1).contains(value) else {
            throw AgentConfigError("\(name)=\(goQuoted(text)) is not a ratio: use a number from 0 to 1, such as 0.5")
        }
        return value
    }
}
