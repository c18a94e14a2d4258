import SwiftASN1
import Testing
import WorkloadIdentity
import X509

@Suite struct CertificateSigningRequestTests {
    static let keys: [WorkloadKey] = [
        try! WorkloadKey.generate(.ecdsaP256), try! WorkloadKey.generate(.ecdsaP384), sharedRSAKey,
    ]

    @Test(arguments: 0..<3)
    func csrIsIstiosShape(keyIndex: Int) throws {
        let key = Self.keys[keyIndex]
        let pem = try CertificateSigningRequestBuilder.pem(for: testIdentity, key: key)
        #expect(pem.hasPrefix("-----BEGIN CERTIFICATE REQUEST-----\n"))
        #expect(pem.hasSuffix("-----END CERTIFICATE REQUEST-----\n"))

        let request = try CertificateSigningRequest(pemEncoded: pem)
        #expect(request.publicKey == key.publicKey)
        #expect(request.publicKey.isValidSignature(request.signature, for: request))
        let expectedAlgorithm: Certificate.SignatureAlgorithm =
            switch key.algorithm {
            case .ecdsaP256: .ecdsaWithSHA256
            case .ecdsaP384: .ecdsaWithSHA384
            case .rsa: .sha256WithRSAEncryption
            }
        #expect(request.signatureAlgorithm == expectedAlgorithm)

        // Subject: exactly one RDN, O="" (Go's `Organization: []string{""}`), no CN.
        let rdns = Array(request.subject)
        #expect(rdns.count == 1)
        let attributes = Array(try #require(rdns.first))
        #expect(attributes.count == 1)
        #expect(attributes.first?.type == .RDNAttributeType.organizationName)
        #expect(attributes.first == (try RelativeDistinguishedName.Attribute(type: .RDNAttributeType.organizationName, printableString: "")))

        // One requested extension: a critical subjectAltName holding the single SPIFFE URI.
        let extensions = try #require(try request.attributes.extensionRequest).extensions
        #expect(Array(extensions).count == 1)
        let san = try #require(extensions[oid: .X509ExtensionID.subjectAlternativeName])
        #expect(san.critical)
        #expect(Array(try SubjectAlternativeNames(san)) == [.uniformResourceIdentifier(testIdentity.uri)])
    }

    @Test func eachCSRIsSignedAnew() throws {
        let key = Self.keys[0]
        let first = try CertificateSigningRequestBuilder.pem(for: testIdentity, key: key)
        let other = SpiffeIdentity(trustDomain: "cluster.local", namespace: "other", serviceAccount: "app")
        let second = try CertificateSigningRequestBuilder.pem(for: other, key: key)
        #expect(first != second)
        let request = try CertificateSigningRequest(pemEncoded: second)
        let san = try #require(try request.attributes.extensionRequest?.extensions.subjectAlternativeNames)
        #expect(Array(san) == [.uniformResourceIdentifier(other.uri)])
    }
}
