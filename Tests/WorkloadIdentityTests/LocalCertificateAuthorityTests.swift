import Crypto
import SwiftASN1
import Testing
import WorkloadIdentity
import X509

@Suite struct LocalCertificateAuthorityTests {
    @Test func newRootIsASelfSignedCAForTheTrustDomain() throws {
        let authority = try LocalCertificateAuthority.create(trustDomain: "example.org", now: { fixedNow })
        #expect(authority.trustDomain == "example.org")
        #expect(authority.rootCertificatePEM.hasPrefix("-----BEGIN CERTIFICATE-----\n"))
        #expect(authority.rootCertificatePEM.hasSuffix("-----END CERTIFICATE-----\n"))
        #expect(authority.rootKeyPEM.hasPrefix("-----BEGIN PRIVATE KEY-----\n"))
        #expect(authority.rootKeyPEM.hasSuffix("-----END PRIVATE KEY-----\n"))

        let root = try Certificate(pemEncoded: authority.rootCertificatePEM)
        #expect(root.subject == root.issuer)
        #expect(root.publicKey.isValidSignature(root.signature, for: root))
        #expect(root.subject.description.contains("O=example.org"))
        #expect(root.subject.description.contains("CN=Sluice local CA"))
        let chain = try CertificateChain(pem: authority.rootCertificatePEM)
        #expect(chain.notBefore == fixedNow - .seconds(60))
        #expect(chain.notAfter == fixedNow - .seconds(60) + .seconds(10 * 365 * 86400))

        let basicConstraints = try #require(root.extensions[oid: .X509ExtensionID.basicConstraints])
        #expect(basicConstraints.critical)
        #expect(try BasicConstraints(basicConstraints) == .isCertificateAuthority(maxPathLength: nil))
        let keyUsageExtension = try #require(root.extensions[oid: .X509ExtensionID.keyUsage])
        #expect(keyUsageExtension.critical)
        let keyUsage = try KeyUsage(keyUsageExtension)
        #expect(keyUsage.keyCertSign && keyUsage.cRLSign && !keyUsage.digitalSignature)
        #expect(try root.extensions.subjectKeyIdentifier != nil)
        #expect(try WorkloadKey(pem: authority.rootKeyPEM).algorithm == .ecdsaP256)
    }

    @Test(arguments: [0, 1])
    func persistReloadAndSignPassesTheIssuedCheck(keyKind: Int) async throws {
        let created = try LocalCertificateAuthority.create(trustDomain: "cluster.local", now: { fixedNow })
        let reloaded = try LocalCertificateAuthority(
            rootCertificatePEM: created.rootCertificatePEM, rootKeyPEM: created.rootKeyPEM,
            trustDomain: "cluster.local", now: { fixedNow + .seconds(5) })
        #expect(reloaded.rootCertificatePEM == created.rootCertificatePEM)
        #expect(reloaded.rootKeyPEM == created.rootKeyPEM)

        let key = keyKind == 0 ? try WorkloadKey.generate(.ecdsaP256) : sharedRSAKey
        let csr = try CertificateSigningRequestBuilder.pem(for: testIdentity, key: key)
        let pems = try await reloaded.sign(csrPEM: csr, validity: .seconds(86400))
        #expect(pems.count == 2)
        #expect(pems[1] == created.rootCertificatePEM)
        let chain = try CertificateChain(pems: pems)
        #expect(chain.lastCertificatePEM == created.rootCertificatePEM)
        #expect(chain.leafURIs == [testIdentity.uri])
        #expect(chain.notBefore == fixedNow + .seconds(5) - .seconds(60))
        #expect(chain.notAfter == fixedNow + .seconds(5) + .seconds(86400))
        try await ChainCheck.checkIssued(chain, for: testIdentity, key: key, at: fixedNow + .seconds(10))

        let leaf = chain.leaf
        #expect(Array(leaf.subject).isEmpty)
        #expect(leaf.publicKey == key.publicKey)
        let san = try #require(leaf.extensions[oid: .X509ExtensionID.subjectAlternativeName])
        #expect(san.critical)
        let keyUsageExtension = try #require(leaf.extensions[oid: .X509ExtensionID.keyUsage])
        #expect(keyUsageExtension.critical)
        let keyUsage = try KeyUsage(keyUsageExtension)
        #expect(keyUsage.digitalSignature && keyUsage.keyEncipherment && !keyUsage.keyCertSign)
        #expect(Array(try #require(try leaf.extensions.extendedKeyUsage)) == [.serverAuth, .clientAuth])
        let basicConstraints = try #require(leaf.extensions[oid: .X509ExtensionID.basicConstraints])
        #expect(basicConstraints.critical)
        #expect(try BasicConstraints(basicConstraints) == .notCertificateAuthority)
        let root = try Certificate(pemEncoded: created.rootCertificatePEM)
        #expect(try leaf.extensions.authorityKeyIdentifier?.keyIdentifier == root.extensions.subjectKeyIdentifier?.keyIdentifier)
        #expect(leaf.serialNumber.bytes.count >= 15 && leaf.serialNumber.bytes.count <= 17)
    }

    @Test func leafValidityIsCappedAtTheRoot() async throws {
        let authority = try LocalCertificateAuthority.create(trustDomain: "cluster.local", validity: .seconds(3600), now: { fixedNow })
        let (_, chain) = try await issue(key: try WorkloadKey.generate(.ecdsaP256), validity: .seconds(86400), authority: authority)
        #expect(chain.notAfter == fixedNow - .seconds(60) + .seconds(3600))
    }

    @Test func serialsDiffer() async throws {
        let key = try WorkloadKey.generate(.ecdsaP256)
        let (authority, first) = try await issue(key: key)
        let (_, second) = try await issue(key: key, authority: authority)
        #expect(first.leaf.serialNumber != second.leaf.serialNumber)
    }

    @Test func refusesACSRForAnotherTrustDomain() async throws {
        let authority = try LocalCertificateAuthority.create(trustDomain: "cluster.local", now: { fixedNow })
        let foreign = SpiffeIdentity(trustDomain: "evil.example", namespace: "default", serviceAccount: "app")
        let csr = try CertificateSigningRequestBuilder.pem(for: foreign, key: try WorkloadKey.generate(.ecdsaP256))
        let message = errorMessage { _ = try authority.issue(csrPEM: csr, validity: .seconds(3600)) }
        #expect(message?.contains(foreign.uri) == true)
        #expect(message?.contains("trust domain evil.example") == true)
        await #expect(throws: WorkloadIdentityError.self) { _ = try await authority.sign(csrPEM: csr, validity: .seconds(3600)) }
    }

    @Test func refusesACSRWithTwoURIs() throws {
        let authority = try LocalCertificateAuthority.create(trustDomain: "cluster.local", now: { fixedNow })
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let second = SpiffeIdentity(trustDomain: "cluster.local", namespace: "kube-system", serviceAccount: "admin")
        let request = try CertificateSigningRequest(
            version: .v1, subject: DistinguishedName(), privateKey: key,
            attributes: try CertificateSigningRequest.Attributes([
                .init(ExtensionRequest(extensions: try Certificate.Extensions {
                    Critical(SubjectAlternativeNames([
                        .uniformResourceIdentifier(testIdentity.uri), .uniformResourceIdentifier(second.uri),
                    ]))
                }))
            ]),
            signatureAlgorithm: .ecdsaWithSHA256)
        let pem = try request.serializeAsPEM().pemString
        let message = errorMessage { _ = try authority.issue(csrPEM: pem, validity: .seconds(3600)) }
        #expect(message?.contains("exactly one URI") == true)
        #expect(message?.contains(second.uri) == true)
    }

    @Test func refusesACSRWithoutURIAndANonSpiffeURI() throws {
        let authority = try LocalCertificateAuthority.create(trustDomain: "cluster.local", now: { fixedNow })
        func csr(_ names: [GeneralName]) throws -> String {
            let request = try CertificateSigningRequest(
                version: .v1, subject: DistinguishedName(), privateKey: Certificate.PrivateKey(P256.Signing.PrivateKey()),
                attributes: try CertificateSigningRequest.Attributes([
                    .init(ExtensionRequest(extensions: try Certificate.Extensions { SubjectAlternativeNames(names) }))
                ]),
                signatureAlgorithm: .ecdsaWithSHA256)
            return try request.serializeAsPEM().pemString
        }
        #expect(errorMessage { _ = try authority.issue(csrPEM: try! csr([.dnsName("app.default.svc")]), validity: .seconds(3600)) }?
            .contains("requests 0") == true)
        #expect(errorMessage { _ = try authority.issue(csrPEM: try! csr([.uniformResourceIdentifier("https://cluster.local/app")]), validity: .seconds(3600)) }?
            .contains("https://cluster.local/app") == true)
    }

    @Test func refusesACSRWithABadSignature() throws {
        let authority = try LocalCertificateAuthority.create(trustDomain: "cluster.local", now: { fixedNow })
        let genuine = try CertificateSigningRequest(
            pemEncoded: try CertificateSigningRequestBuilder.pem(for: testIdentity, key: try WorkloadKey.generate(.ecdsaP256)))
        // The same request body claiming another public key: the signature no longer matches.
        let forged = try CertificateSigningRequest(
            version: genuine.version, subject: genuine.subject,
            publicKey: try WorkloadKey.generate(.ecdsaP256).publicKey,
            attributes: genuine.attributes, signatureAlgorithm: genuine.signatureAlgorithm, signature: genuine.signature)
        let message = errorMessage { _ = try authority.issue(csrPEM: try! forged.serializeAsPEM().pemString, validity: .seconds(3600)) }
        #expect(message?.contains("signature does not verify") == true)
        #expect(errorMessage { _ = try authority.issue(csrPEM: "garbage", validity: .seconds(3600)) }?.contains("CERTIFICATE REQUEST") == true)
    }

    @Test func reloadRefusesAMismatchedKeyAndANonCA() async throws {
        let first = try LocalCertificateAuthority.create(trustDomain: "cluster.local", now: { fixedNow })
        let second = try LocalCertificateAuthority.create(trustDomain: "cluster.local", now: { fixedNow })
        let mismatch = errorMessage {
            _ = try LocalCertificateAuthority(rootCertificatePEM: first.rootCertificatePEM, rootKeyPEM: second.rootKeyPEM,
                                              trustDomain: "cluster.local")
        }
        #expect(mismatch?.contains("does not match") == true)

        let key = try WorkloadKey.generate(.ecdsaP256)
        let (_, chain) = try await issue(key: key, authority: first)
        let leafPEM = try CertificateChain(pems: [chain.leaf.serializeAsPEM().pemString]).pem
        let notCA = errorMessage {
            _ = try LocalCertificateAuthority(rootCertificatePEM: leafPEM, rootKeyPEM: key.pem(pkcs8: false),
                                              trustDomain: "cluster.local")
        }
        #expect(notCA?.contains("not a CA") == true)
    }
}
