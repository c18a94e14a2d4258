import Testing
import WorkloadIdentity
import X509

@Suite struct ChainCheckTests {
    @Test func acceptsWhatTheLocalCAIssues() async throws {
        let key = try WorkloadKey.generate(.ecdsaP384)
        let (_, chain) = try await issue(key: key)
        try await ChainCheck.checkIssued(chain, for: testIdentity, key: key, at: fixedNow)
        try ChainCheck.checkCurrent(chain, at: fixedNow)
    }

    @Test func refusesAOneElementChain() async throws {
        let key = try WorkloadKey.generate(.ecdsaP256)
        let (_, chain) = try await issue(key: key)
        let leafOnly = try CertificateChain(pems: [try chain.leaf.serializeAsPEM().pemString])
        #expect(leafOnly.certificates.count == 1)
        let message = await errorMessage { try await ChainCheck.checkIssued(leafOnly, for: testIdentity, key: key, at: fixedNow) }
        #expect(message?.contains("invalid empty CertChain") == true)
    }

    @Test func refusesAChainForAnotherIdentity() async throws {
        let key = try WorkloadKey.generate(.ecdsaP256)
        let other = SpiffeIdentity(trustDomain: "cluster.local", namespace: "default", serviceAccount: "someone-else")
        let (_, chain) = try await issue(for: other, key: key)
        let message = await errorMessage { try await ChainCheck.checkIssued(chain, for: testIdentity, key: key, at: fixedNow) }
        #expect(message?.contains(other.uri) == true)
        #expect(message?.contains("expected exactly \(testIdentity.uri)") == true)
    }

    @Test func refusesAKeyMismatch() async throws {
        let (_, chain) = try await issue(key: try WorkloadKey.generate(.ecdsaP256))
        let otherKey = try WorkloadKey.generate(.ecdsaP256)
        let message = await errorMessage { try await ChainCheck.checkIssued(chain, for: testIdentity, key: otherKey, at: fixedNow) }
        #expect(message?.contains("public key") == true)
    }

    @Test func refusesAnExpiredLeafAndANotYetValidOne() async throws {
        let key = try WorkloadKey.generate(.ecdsaP256)
        let (_, chain) = try await issue(key: key, validity: .seconds(3600))
        let expiry = fixedNow + .seconds(3600)
        #expect(chain.notAfter == expiry)
        let expired = await errorMessage { try await ChainCheck.checkIssued(chain, for: testIdentity, key: key, at: expiry) }
        #expect(expired?.contains("expired at \(expiry.rfc3339)") == true)
        // One second before expiry it is still current.
        try await ChainCheck.checkIssued(chain, for: testIdentity, key: key, at: expiry - .seconds(1))

        let early = fixedNow - .seconds(61)
        let notYet = errorMessage { try ChainCheck.checkCurrent(chain, at: early) }
        #expect(notYet?.contains("not valid before \((fixedNow - .seconds(60)).rfc3339)") == true)
    }

    @Test func refusesALeafSignedByADifferentRoot() async throws {
        let key = try WorkloadKey.generate(.ecdsaP256)
        let (_, chain) = try await issue(key: key)
        let stranger = try LocalCertificateAuthority.create(trustDomain: "cluster.local", now: { fixedNow })
        let spliced = try CertificateChain(pems: [try chain.leaf.serializeAsPEM().pemString, stranger.rootCertificatePEM])
        let message = await errorMessage { try await ChainCheck.checkIssued(spliced, for: testIdentity, key: key, at: fixedNow) }
        #expect(message?.contains("does not verify") == true)
    }

    @Test func verifiesThroughAnIntermediate() async throws {
        let root = try LocalCertificateAuthority.create(trustDomain: "cluster.local", now: { fixedNow })
        let rootCertificate = try Certificate(pemEncoded: root.rootCertificatePEM)
        let rootKey = try WorkloadKey(pem: root.rootKeyPEM)
        let intermediateKey = try WorkloadKey.generate(.ecdsaP256)
        let intermediate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: intermediateKey.publicKey,
            notValidBefore: rootCertificate.notValidBefore, notValidAfter: rootCertificate.notValidAfter,
            issuer: rootCertificate.subject,
            subject: try DistinguishedName { OrganizationName("cluster.local"); CommonName("intermediate") },
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
                Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: rootKey.certificateKey)
        let intermediateCA = try LocalCertificateAuthority(
            rootCertificatePEM: try intermediate.serializeAsPEM().pemString, rootKeyPEM: intermediateKey.pem(pkcs8: false),
            trustDomain: "cluster.local", now: { fixedNow })

        let key = try WorkloadKey.generate(.ecdsaP256)
        let csr = try CertificateSigningRequestBuilder.pem(for: testIdentity, key: key)
        let pems = try await intermediateCA.sign(csrPEM: csr, validity: .seconds(3600))
        let full = try CertificateChain(pems: pems + [root.rootCertificatePEM])
        #expect(full.certificates.count == 3)
        try await ChainCheck.checkIssued(full, for: testIdentity, key: key, at: fixedNow)

        // Without the intermediate the leaf does not chain to the root.
        let gap = try CertificateChain(pems: [pems[0], root.rootCertificatePEM])
        let message = await errorMessage { try await ChainCheck.checkIssued(gap, for: testIdentity, key: key, at: fixedNow) }
        #expect(message?.contains("does not verify") == true)
    }
}
