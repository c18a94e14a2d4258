import Crypto
import SwiftASN1
import X509

/// The built-in CA for `CA_PROVIDER=local`: a self-signed ECDSA P-256 root that signs workload CSRs.
public struct LocalCertificateAuthority: CertificateSigner {
    public var trustDomain: String
    public var rootCertificatePEM: String   // ends with "\n"
    public var rootKeyPEM: String           // PKCS#8 "PRIVATE KEY", ends with "\n"

    private let rootCertificate: Certificate
    private let rootKey: WorkloadKey
    private let now: @Sendable () -> WallClockTime

    /// Workloads and the CA may disagree on the time by a little; Istio backdates the same way.
    static let clockSkewAllowance: Duration = .seconds(60)

    /// A new root: subject O=<trustDomain> (as Istio's self-signed root), CN "Sluice local CA", validity
    /// `validity` (default 10 years) from `now - 1 minute`, basicConstraints CA:true critical, keyUsage
    /// keyCertSign + cRLSign critical, subjectKeyIdentifier.
    public static func create(trustDomain: String, validity: Duration = .seconds(10 * 365 * 86400),
                              now: @escaping @Sendable () -> WallClockTime = WallClockTime.now)
        throws(WorkloadIdentityError) -> LocalCertificateAuthority
    {
        guard !trustDomain.isEmpty else {
            throw WorkloadIdentityError("the local CA needs a trust domain (TRUST_DOMAIN is empty)")
        }
        guard validity > .seconds(60) else {
            throw WorkloadIdentityError("the local CA root's validity \(validity) is too short; use at least a day")
        }
        let key = try WorkloadKey.generate(.ecdsaP256)
        let notBefore = now() - clockSkewAllowance
        let certificate: Certificate
        do {
            let subject = try DistinguishedName {
                OrganizationName(trustDomain)
                CommonName("Sluice local CA")
            }
            let extensions = try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: key.publicKey)
            }
            certificate = try Certificate(
                version: .v3,
                serialNumber: randomSerialNumber(),
                publicKey: key.publicKey,
                notValidBefore: notBefore.date,
                notValidAfter: (notBefore + validity).date,
                issuer: subject,
                subject: subject,
                signatureAlgorithm: key.signatureAlgorithm,
                extensions: extensions,
                issuerPrivateKey: key.certificateKey)
        } catch {
            throw WorkloadIdentityError("could not create the local CA root for \(trustDomain): \(error)")
        }
        return LocalCertificateAuthority(trustDomain: trustDomain, rootCertificate: certificate, rootKey: key, now: now)
    }

    /// Loads a persisted root; checks the key matches the certificate and the certificate is a CA.
    public init(rootCertificatePEM: String, rootKeyPEM: String, trustDomain: String,
                now: @escaping @Sendable () -> WallClockTime = WallClockTime.now) throws(WorkloadIdentityError)
    {
        let chain: CertificateChain
        do {
            chain = try CertificateChain(pem: rootCertificatePEM)
        } catch {
            throw WorkloadIdentityError("local CA root certificate: \(error.description)")
        }
        guard chain.certificates.count == 1 else {
            throw WorkloadIdentityError(
                "local CA root certificate: expected one certificate, found \(chain.certificates.count)")
        }
        let key: WorkloadKey
        do {
            key = try WorkloadKey(pem: rootKeyPEM)
        } catch {
            throw WorkloadIdentityError("local CA root key: \(error.description)")
        }
        let certificate = chain.leaf
        guard key.publicKey == certificate.publicKey else {
            throw WorkloadIdentityError(
                "local CA root key: it does not match the root certificate's public key; persist them as a pair or remove both")
        }
        guard case .isCertificateAuthority = try? certificate.extensions.basicConstraints else {
            throw WorkloadIdentityError(
                "local CA root certificate (\(certificate.subject)) is not a CA (basicConstraints CA:true missing)")
        }
        guard !trustDomain.isEmpty else {
            throw WorkloadIdentityError("the local CA needs a trust domain (TRUST_DOMAIN is empty)")
        }
        self.init(trustDomain: trustDomain, rootCertificate: certificate, rootKey: key, now: now)
    }

    private init(trustDomain: String, rootCertificate: Certificate, rootKey: WorkloadKey,
                 now: @escaping @Sendable () -> WallClockTime)
    {
        self.trustDomain = trustDomain
        self.rootCertificate = rootCertificate
        self.rootKey = rootKey
        self.now = now
        self.rootCertificatePEM = CertificateChain.pem(of: rootCertificate)
        self.rootKeyPEM = rootKey.pem(pkcs8: true)
    }

    /// Verifies the CSR's signature; requires exactly one URI SAN, a SPIFFE identity in `trustDomain`
    /// (else an error naming the URI); issues a leaf: serial random 128-bit, empty subject, notBefore
    /// now - 1 minute (clock skew), notAfter = now + validity capped at the root's notAfter, keyUsage
    /// digitalSignature + keyEncipherment critical, extendedKeyUsage serverAuth + clientAuth,
    /// subjectAltName critical with the URI, authorityKeyIdentifier, basicConstraints CA:false critical.
    /// Returns [leaf PEM, root PEM]. Errors are WorkloadIdentityError.
    public func sign(csrPEM: String, validity: Duration) async throws -> [String] {
        try issue(csrPEM: csrPEM, validity: validity)
    }

    /// The synchronous body of `sign`, with the typed error.
    public func issue(csrPEM: String, validity: Duration) throws(WorkloadIdentityError) -> [String] {
        guard validity > .zero else {
            throw WorkloadIdentityError("the requested certificate validity \(validity) must be positive (SECRET_TTL)")
        }
        let request: CertificateSigningRequest
        do {
            request = try CertificateSigningRequest(pemEncoded: csrPEM)
        } catch {
            throw WorkloadIdentityError("the CSR is not a valid PEM CERTIFICATE REQUEST: \(error)")
        }
        guard request.publicKey.isValidSignature(request.signature, for: request) else {
            throw WorkloadIdentityError("the CSR's signature does not verify with its own public key; the CSR was altered or mis-signed")
        }
        let uris: [String]
        do {
            let extensions = try request.attributes.extensionRequest?.extensions ?? Certificate.Extensions()
            uris = (try extensions.subjectAlternativeNames ?? SubjectAlternativeNames()).compactMap {
                if case .uniformResourceIdentifier(let uri) = $0 { return uri }
                return nil
            }
        } catch {
            throw WorkloadIdentityError("the CSR's requested extensions do not parse: \(error)")
        }
        guard uris.count == 1 else {
            throw WorkloadIdentityError(
                "the CSR must request exactly one URI subjectAltName (the workload's SPIFFE identity); it requests \(uris.count)\(uris.isEmpty ? "" : ": " + uris.joined(separator: ", "))")
        }
        guard let identity = SpiffeIdentity(uri: uris[0]) else {
            throw WorkloadIdentityError(
                "the CSR's URI \(uris[0]) is not a SPIFFE identity of the form spiffe://<trust domain>/ns/<namespace>/sa/<service account>")
        }
        guard identity.trustDomain == trustDomain else {
            throw WorkloadIdentityError(
                "the CSR's URI \(uris[0]) is in trust domain \(identity.trustDomain); this CA signs only for \(trustDomain)")
        }

        let issuedAt = now()
        let rootNotAfter = WallClockTime(rootCertificate.notValidAfter)
        let notAfter = min(issuedAt + validity, rootNotAfter)
        let notBefore = issuedAt - Self.clockSkewAllowance
        guard notBefore < notAfter else {
            throw WorkloadIdentityError("the local CA root expired at \(rootNotAfter.rfc3339); remove it so a new one is created")
        }
        do {
            let authorityKeyIdentifier = (try? rootCertificate.extensions.subjectKeyIdentifier)?.keyIdentifier
                ?? SubjectKeyIdentifier(hash: rootCertificate.publicKey).keyIdentifier
            let extensions = try Certificate.Extensions {
                Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                Critical(BasicConstraints.notCertificateAuthority)
                AuthorityKeyIdentifier(keyIdentifier: authorityKeyIdentifier)
                // Critical because the subject is empty (RFC 5280 §4.2.1.6), as Istio's CA issues it.
                Critical(SubjectAlternativeNames([.uniformResourceIdentifier(identity.uri)]))
            }
            let leaf = try Certificate(
                version: .v3,
                serialNumber: Self.randomSerialNumber(),
                publicKey: request.publicKey,
                notValidBefore: notBefore.date,
                notValidAfter: notAfter.date,
                issuer: rootCertificate.subject,
                subject: DistinguishedName(),
                signatureAlgorithm: rootKey.signatureAlgorithm,
                extensions: extensions,
                issuerPrivateKey: rootKey.certificateKey)
            return [CertificateChain.pem(of: leaf), rootCertificatePEM]
        } catch {
            throw WorkloadIdentityError("the local CA could not issue a certificate for \(identity.uri): \(error)")
        }
    }

    /// 128 random bits, positive (top bit clear) as RFC 5280 §4.1.2.2 requires.
    static func randomSerialNumber() -> Certificate.SerialNumber {
        var generator = SystemRandomNumberGenerator()
        var bytes = (0..<16).map { _ in UInt8.random(in: 0...255, using: &generator) }
        bytes[0] = (bytes[0] & 0x7F) | 0x40
        return Certificate.SerialNumber(bytes: bytes)
    }
}
