import Crypto
import Testing
import WorkloadIdentity
import X509
import _CryptoExtras

@Suite struct WorkloadKeyTests {
    static func pemLabel(_ pem: String) -> String? {
        guard pem.hasPrefix("-----BEGIN "), let end = pem.firstIndex(of: "\n") else { return nil }
        return String(pem[pem.index(pem.startIndex, offsetBy: 11)..<end].dropLast(5))
    }

    @Test(arguments: [WorkloadKeyAlgorithm.ecdsaP256, .ecdsaP384])
    func ecKeysEncodeAsSEC1AndPKCS8AndParseBack(algorithm: WorkloadKeyAlgorithm) throws {
        let key = try WorkloadKey.generate(algorithm)
        #expect(key.algorithm == algorithm)

        let sec1 = key.pem(pkcs8: false)
        #expect(Self.pemLabel(sec1) == "EC PRIVATE KEY")
        #expect(sec1.hasSuffix("-----END EC PRIVATE KEY-----\n"))
        let fromSEC1 = try WorkloadKey(pem: sec1)
        #expect(fromSEC1.algorithm == algorithm)
        #expect(fromSEC1.publicKey == key.publicKey)
        // swift-certificates reads SEC1 by its named-curve parameter: this checks the curve OID we write.
        #expect(try Certificate.PrivateKey(pemEncoded: sec1).publicKey == key.publicKey)

        let pkcs8 = key.pem(pkcs8: true)
        #expect(Self.pemLabel(pkcs8) == "PRIVATE KEY")
        #expect(pkcs8.hasSuffix("-----END PRIVATE KEY-----\n"))
        let fromPKCS8 = try WorkloadKey(pem: pkcs8)
        #expect(fromPKCS8.algorithm == algorithm)
        #expect(fromPKCS8.publicKey == key.publicKey)
        #expect(try Certificate.PrivateKey(pemEncoded: pkcs8).publicKey == key.publicKey)

        // Re-encoding is stable: the same key gives the same bytes.
        #expect(fromSEC1.pem(pkcs8: false) == sec1)
        #expect(fromPKCS8.pem(pkcs8: true) == pkcs8)
    }

    @Test func rsaKeyEncodesAsPKCS1AndPKCS8AndParsesBack() throws {
        let key = sharedRSAKey
        #expect(key.algorithm == .rsa(bits: 2048))

        let pkcs1 = key.pem(pkcs8: false)
        #expect(Self.pemLabel(pkcs1) == "RSA PRIVATE KEY")
        #expect(pkcs1.hasSuffix("-----END RSA PRIVATE KEY-----\n"))
        let fromPKCS1 = try WorkloadKey(pem: pkcs1)
        #expect(fromPKCS1.algorithm == .rsa(bits: 2048))
        #expect(fromPKCS1.publicKey == key.publicKey)
        #expect(try Certificate.PrivateKey(pemEncoded: pkcs1).publicKey == key.publicKey)

        let pkcs8 = key.pem(pkcs8: true)
        #expect(Self.pemLabel(pkcs8) == "PRIVATE KEY")
        let fromPKCS8 = try WorkloadKey(pem: pkcs8)
        #expect(fromPKCS8.algorithm == .rsa(bits: 2048))
        #expect(fromPKCS8.publicKey == key.publicKey)
        #expect(try Certificate.PrivateKey(pemEncoded: pkcs8).publicKey == key.publicKey)
    }

    @Test func certificateKeySignsForItsPublicKey() throws {
        for key in [try WorkloadKey.generate(.ecdsaP256), sharedRSAKey] {
            #expect(key.certificateKey.publicKey == key.publicKey)
        }
    }

    @Test func refusesOtherPEMAndGarbage() throws {
        #expect(errorMessage { _ = try WorkloadKey(pem: "not a key") }?.contains("no -----BEGIN") == true)
        let certificateBlock = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        #expect(errorMessage { _ = try WorkloadKey(pem: certificateBlock) }?.contains("\"CERTIFICATE\"") == true)
        let key = try WorkloadKey.generate(.ecdsaP256)
        let twoKeys = key.pem(pkcs8: false) + key.pem(pkcs8: true)
        #expect(errorMessage { _ = try WorkloadKey(pem: twoKeys) }?.contains("2 blocks") == true)
        let truncated = "-----BEGIN EC PRIVATE KEY-----\nMAMCAQE=\n-----END EC PRIVATE KEY-----\n"
        #expect(errorMessage { _ = try WorkloadKey(pem: truncated) } != nil)
    }

    @Test func refusesRSAKeysShorterThan2048Bits() throws {
        let short = try _RSA.Signing.PrivateKey(unsafeKeySize: .init(bitCount: 1024))
        let message = errorMessage { _ = try WorkloadKey(pem: short.pemRepresentation) }
        #expect(message?.contains("1024 bits") == true)
    }

    @Test func istioSettingsChooseTheAlgorithm() throws {
        #expect(try WorkloadKeyAlgorithm.fromIstioSettings(eccSignatureAlgorithm: "", eccCurve: "", rsaKeySize: 2048)
            == .rsa(bits: 2048))
        #expect(try WorkloadKeyAlgorithm.fromIstioSettings(eccSignatureAlgorithm: "RSA", eccCurve: "P384", rsaKeySize: 4096)
            == .rsa(bits: 4096))
        #expect(try WorkloadKeyAlgorithm.fromIstioSettings(eccSignatureAlgorithm: "ECDSA", eccCurve: "", rsaKeySize: 2048)
            == .ecdsaP256)
        #expect(try WorkloadKeyAlgorithm.fromIstioSettings(eccSignatureAlgorithm: "ECDSA", eccCurve: "P256", rsaKeySize: 0)
            == .ecdsaP256)
        #expect(try WorkloadKeyAlgorithm.fromIstioSettings(eccSignatureAlgorithm: "ECDSA", eccCurve: "P384", rsaKeySize: 2048)
            == .ecdsaP384)
    }

    @Test func istioSettingsErrorsNameTheVariable() {
        let short = errorMessage { _ = try WorkloadKeyAlgorithm.fromIstioSettings(eccSignatureAlgorithm: "", eccCurve: "", rsaKeySize: 1024) }
        #expect(short?.contains("WORKLOAD_RSA_KEY_SIZE=1024") == true)
        let algorithm = errorMessage { _ = try WorkloadKeyAlgorithm.fromIstioSettings(eccSignatureAlgorithm: "EdDSA", eccCurve: "", rsaKeySize: 2048) }
        #expect(algorithm?.contains("ECC_SIGNATURE_ALGORITHM=EdDSA") == true)
        let curve = errorMessage { _ = try WorkloadKeyAlgorithm.fromIstioSettings(eccSignatureAlgorithm: "ECDSA", eccCurve: "P521", rsaKeySize: 2048) }
        #expect(curve?.contains("ECC_CURVE=P521") == true)
    }

    @Test func generateRefusesShortRSA() {
        #expect(errorMessage { _ = try WorkloadKey.generate(.rsa(bits: 1024)) }?.contains("WORKLOAD_RSA_KEY_SIZE") == true)
    }
}
