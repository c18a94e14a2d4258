import SwiftASN1
import X509

/// One or more PEM certificates, leaf first.
public struct CertificateChain: Sendable, Hashable {
    public var certificates: [Certificate]

    /// Every "CERTIFICATE" block of `pem`, in order; other blocks refused; at least one required.
    public init(pem: String) throws(WorkloadIdentityError) {
        let certificates = try Self.certificates(in: pem, describedAs: "the certificate chain")
        guard !certificates.isEmpty else {
            throw WorkloadIdentityError("the certificate chain holds no -----BEGIN CERTIFICATE----- block")
        }
        self.certificates = certificates
    }

    /// Each element one PEM certificate (a CA response's cert_chain).
    public init(pems: [String]) throws(WorkloadIdentityError) {
        var certificates: [Certificate] = []
        for (index, pem) in pems.enumerated() {
            let parsed = try Self.certificates(in: pem, describedAs: "certificate \(index + 1) of \(pems.count)")
            guard !parsed.isEmpty else {
                throw WorkloadIdentityError("certificate \(index + 1) of \(pems.count) holds no -----BEGIN CERTIFICATE----- block")
            }
            certificates += parsed
        }
        guard !certificates.isEmpty else { throw WorkloadIdentityError("the certificate chain is empty") }
        self.certificates = certificates
    }

    init(certificates: [Certificate]) {
        self.certificates = certificates
    }

    public var leaf: Certificate { certificates[0] }

    /// The chain as served to Envoy: every certificate re-encoded as PEM, each ending in "\n", concatenated.
    public var pem: String {
        certificates.map(Self.pem(of:)).joined()
    }

    /// The last certificate's PEM (a CA response's root, Istio's ROOTCA).
    public var lastCertificatePEM: String {
        Self.pem(of: certificates[certificates.count - 1])
    }

    public var notBefore: WallClockTime { WallClockTime(leaf.notValidBefore) }   // the leaf's
    public var notAfter: WallClockTime { WallClockTime(leaf.notValidAfter) }     // the leaf's

    /// The leaf's URI subjectAltNames, in order.
    public var leafURIs: [String] {
        Self.uris(of: leaf)
    }

    static func uris(of certificate: Certificate) -> [String] {
        guard let names = try? certificate.extensions.subjectAlternativeNames else { return [] }
        return names.compactMap {
            if case .uniformResourceIdentifier(let uri) = $0 { return uri }
            return nil
        }
    }

    static func pem(of certificate: Certificate) -> String {
        // A parsed certificate keeps its DER bytes, so re-encoding cannot fail.
        var serializer = DER.Serializer()
        try! serializer.serialize(certificate)
        return PEMDocument(type: "CERTIFICATE", derBytes: serializer.serializedBytes).pemString + "\n"
    }

    private static func certificates(in pem: String, describedAs what: String) throws(WorkloadIdentityError)
        -> [Certificate]
    {
        let documents: [PEMDocument]
        do {
            documents = try PEMDocument.parseMultiple(pemString: pem)
        } catch {
            throw WorkloadIdentityError("\(what) is not valid PEM: \(error)")
        }
        var certificates: [Certificate] = []
        for (index, document) in documents.enumerated() {
            guard document.discriminator == "CERTIFICATE" else {
                throw WorkloadIdentityError(
                    "\(what): PEM block \(index + 1) is \"\(document.discriminator)\"; only CERTIFICATE blocks are allowed")
            }
            do {
                certificates.append(try Certificate(derEncoded: document.derBytes))
            } catch {
                throw WorkloadIdentityError("\(what): PEM block \(index + 1) is not a valid X.509 certificate: \(error)")
            }
        }
        return certificates
    }
}

/// A certificate chain with the private key for its leaf: what `default` serves.
public struct CertifiedKey: Sendable {
    public var chain: CertificateChain
    public var keyPEM: String
    public var key: WorkloadKey

    /// Checks what Go's tls.X509KeyPair checks: the key parses and matches the leaf's public key.
    /// `keyPEM` is kept byte for byte (served as read). Error names which part is wrong.
    public init(chain: CertificateChain, keyPEM: String) throws(WorkloadIdentityError) {
        let key: WorkloadKey
        do {
            key = try WorkloadKey(pem: keyPEM)
        } catch {
            throw WorkloadIdentityError("private key: \(error.description)")
        }
        guard key.publicKey == chain.leaf.publicKey else {
            throw WorkloadIdentityError(
                "private key: the \(key.algorithm) private key does not match the public key of the chain's leaf certificate (\(chain.leafURIs.first ?? "subject \(chain.leaf.subject)")); use the key the leaf was issued for")
        }
        self.chain = chain
        self.keyPEM = keyPEM
        self.key = key
    }
}
