import Testing
import WorkloadIdentity
import X509

@Suite struct CertificateChainTests {
    @Test func parsesReencodesAndReportsTheLeaf() async throws {
        let key = try WorkloadKey.generate(.ecdsaP256)
        let (authority, issued) = try await issue(key: key)
        #expect(issued.certificates.count == 2)
        #expect(issued.pem.hasSuffix("-----END CERTIFICATE-----\n"))
        #expect(issued.pem.split(separator: "\n").filter { $0 == "-----BEGIN CERTIFICATE-----" }.count == 2)

        // Whitespace and CRLF around blocks are tolerated; the re-encoding is canonical.
        let messy = "\r\n" + issued.pem.split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\r\n") + "\n\n"
        let reparsed = try CertificateChain(pem: messy)
        #expect(reparsed == issued)
        #expect(reparsed.pem == issued.pem)
        #expect(reparsed.lastCertificatePEM == authority.rootCertificatePEM)
        #expect(reparsed.leafURIs == [testIdentity.uri])
        #expect(reparsed.notBefore == fixedNow - .seconds(60))
        #expect(reparsed.notAfter == fixedNow + .seconds(86400))
    }

    @Test func refusesEmptyAndForeignBlocks() throws {
        #expect(errorMessage { _ = try CertificateChain(pem: "") }?.contains("no -----BEGIN CERTIFICATE") == true)
        #expect(errorMessage { _ = try CertificateChain(pems: []) }?.contains("empty") == true)
        let key = try WorkloadKey.generate(.ecdsaP256)
        let authority = try LocalCertificateAuthority.create(trustDomain: "cluster.local", now: { fixedNow })
        let withKey = authority.rootCertificatePEM + key.pem(pkcs8: false)
        #expect(errorMessage { _ = try CertificateChain(pem: withKey) }?.contains("\"EC PRIVATE KEY\"") == true)
        let notDER = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        #expect(errorMessage { _ = try CertificateChain(pems: [authority.rootCertificatePEM, notDER]) }?
            .contains("certificate 2 of 2") == true)
    }
}

@Suite struct CertifiedKeyTests {
    @Test func acceptsTheMatchingKeyAndKeepsItsBytes() async throws {
        let key = sharedRSAKey
        let (_, chain) = try await issue(key: key)
        let keyPEM = "\n" + key.pem(pkcs8: true)
        let certified = try CertifiedKey(chain: chain, keyPEM: keyPEM)
        #expect(certified.keyPEM == keyPEM)
        #expect(certified.chain == chain)
        #expect(certified.key.publicKey == key.publicKey)
    }

    @Test func refusesAMismatchedOrBrokenKey() async throws {
        let (_, chain) = try await issue(key: try WorkloadKey.generate(.ecdsaP256))
        let otherKey = try WorkloadKey.generate(.ecdsaP256)
        let mismatch = errorMessage { _ = try CertifiedKey(chain: chain, keyPEM: otherKey.pem(pkcs8: false)) }
        #expect(mismatch?.contains("does not match the public key of the chain's leaf certificate") == true)
        let broken = errorMessage { _ = try CertifiedKey(chain: chain, keyPEM: "no key here") }
        #expect(broken?.hasPrefix("private key:") == true)
    }
}
