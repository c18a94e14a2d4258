import SwiftASN1
import X509

public enum CertificateSigningRequestBuilder {
    /// Istio's CSR: an empty subject (O=""), one critical subjectAltName extension (in the
    /// extensionRequest attribute) holding the single SPIFFE URI; signed with the key
    /// (ECDSA-SHA256 for P-256, ECDSA-SHA384 for P-384, RSA PKCS#1 v1.5 SHA-256).
    /// PEM type "CERTIFICATE REQUEST", ends with a newline.
    public static func pem(for identity: SpiffeIdentity, key: WorkloadKey) throws(WorkloadIdentityError) -> String {
        do {
            let request = try CertificateSigningRequest(
                version: .v1,
                subject: try emptyOrganizationSubject(),
                privateKey: key.certificateKey,
                attributes: try CertificateSigningRequest.Attributes([
                    .init(ExtensionRequest(extensions: Certificate.Extensions([
                        // Critical because the subject is empty (RFC 5280 §4.2.1.6), as Istio's san.go marks it.
                        Certificate.Extension(
                            SubjectAlternativeNames([.uniformResourceIdentifier(identity.uri)]), critical: true),
                    ])))
                ]),
                signatureAlgorithm: key.signatureAlgorithm)
            return try request.serializeAsPEM().pemString + "\n"
        } catch {
            throw WorkloadIdentityError("could not build the CSR for \(identity.uri) with a \(key.algorithm) key: \(error)")
        }
    }

    /// Istio's generate_csr.go sets `Organization: []string{""}`: Go writes that as one RDN with an empty
    /// PrintableString, which is what this reproduces.
    static func emptyOrganizationSubject() throws -> DistinguishedName {
        DistinguishedName([
            RelativeDistinguishedName(
                try RelativeDistinguishedName.Attribute(type: .RDNAttributeType.organizationName, printableString: ""))
        ])
    }
}
