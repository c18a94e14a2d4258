// SwiftProtobuf models `bytes` as Data; FoundationEssentials has it without the rest of Foundation.
import FoundationEssentials
import SDSProtos

/// What one SDS resource holds, before it becomes Envoy's `Secret` message (SDS.md §6).
public enum SecretMaterial: Sendable, Equatable {
    /// `tls_certificate`: the chain (leaf first; Istio includes the root) and its private key, as PEM.
    case certificate(chainPEM: String, keyPEM: String)
    /// `validation_context`: PEM roots, and the CRL file when the mesh has one.
    case roots(pem: String, crlPath: String?)

    /// Envoy's `Secret` named as the data plane asked.
    public func secret(named name: String) -> Envoy_Extensions_TransportSockets_Tls_V3_Secret {
        var secret = Envoy_Extensions_TransportSockets_Tls_V3_Secret()
        secret.name = name
        switch self {
        case .certificate(let chainPEM, let keyPEM):
            var certificate = Envoy_Extensions_TransportSockets_Tls_V3_TlsCertificate()
            certificate.certificateChain.inlineBytes = Data(chainPEM.utf8)
            certificate.privateKey.inlineBytes = Data(keyPEM.utf8)
            secret.tlsCertificate = certificate
        case .roots(let pem, let crlPath):
            var validation = Envoy_Extensions_TransportSockets_Tls_V3_CertificateValidationContext()
            validation.trustedCa.inlineBytes = Data(pem.utf8)
            if let crlPath { validation.crl.filename = crlPath }
            secret.validationContext = validation
        }
        return secret
    }
}
