import Crypto
import _CryptoExtras
import SwiftASN1
import X509

/// A workload's private key, in the encodings Istio writes and reads.
public struct WorkloadKey: Sendable {
    enum Backing: Sendable {
        case p256(P256.Signing.PrivateKey)
        case p384(P384.Signing.PrivateKey)
        case rsa(_RSA.Signing.PrivateKey)
    }

    let backing: Backing

    init(backing: Backing) {
        self.backing = backing
    }

    public static func generate(_ algorithm: WorkloadKeyAlgorithm) throws(WorkloadIdentityError) -> WorkloadKey {
        switch algorithm {
        case .ecdsaP256:
            return WorkloadKey(backing: .p256(P256.Signing.PrivateKey()))
        case .ecdsaP384:
            return WorkloadKey(backing: .p384(P384.Signing.PrivateKey()))
        case .rsa(let bits):
            guard bits >= WorkloadKeyAlgorithm.minimumRSABits, bits <= WorkloadKeyAlgorithm.maximumRSABits else {
                throw WorkloadIdentityError(
                    "WORKLOAD_RSA_KEY_SIZE=\(bits): RSA keys must be \(WorkloadKeyAlgorithm.minimumRSABits)...\(WorkloadKeyAlgorithm.maximumRSABits) bits")
            }
            do {
                return WorkloadKey(backing: .rsa(try _RSA.Signing.PrivateKey(keySize: .init(bitCount: bits))))
            } catch {
                throw WorkloadIdentityError("could not generate an RSA \(bits) key: \(error)")
            }
        }
    }

    /// Reads "EC PRIVATE KEY" (SEC1), "RSA PRIVATE KEY" (PKCS#1) or "PRIVATE KEY" (PKCS#8) PEM.
    public init(pem: String) throws(WorkloadIdentityError) {
        let document: PEMDocument
        do {
            let documents = try PEMDocument.parseMultiple(pemString: pem)
            guard documents.count == 1 else {
                throw WorkloadIdentityError(
                    documents.isEmpty
                        ? "the private key is not PEM: no -----BEGIN ...----- block found"
                        : "the private key PEM holds \(documents.count) blocks; expected exactly one private key")
            }
            document = documents[0]
        } catch let error as WorkloadIdentityError {
            throw error
        } catch {
            throw WorkloadIdentityError("the private key is not valid PEM: \(error)")
        }
        switch document.discriminator {
        case "EC PRIVATE KEY":
            self = try Self.fromSEC1(document.derBytes)
        case "RSA PRIVATE KEY":
            self = try Self.fromRSA(document.derBytes, encoding: "PKCS#1")
        case "PRIVATE KEY":
            self = try Self.fromPKCS8(document.derBytes)
        default:
            throw WorkloadIdentityError(
                "the private key PEM block is \"\(document.discriminator)\"; expected EC PRIVATE KEY, RSA PRIVATE KEY or PRIVATE KEY (unencrypted)")
        }
    }

    public var algorithm: WorkloadKeyAlgorithm {
        switch backing {
        case .p256: .ecdsaP256
        case .p384: .ecdsaP384
        case .rsa(let key): .rsa(bits: key.keySizeInBits)
        }
    }

    /// Istio's encodings: SEC1 "EC PRIVATE KEY" / PKCS#1 "RSA PRIVATE KEY", or PKCS#8 "PRIVATE KEY" when
    /// `pkcs8` (PKCS8_KEY=true). Ends with a newline.
    public func pem(pkcs8: Bool) -> String {
        let document: PEMDocument
        switch (backing, pkcs8) {
        case (.p256(let key), false):
            document = PEMDocument(
                type: "EC PRIVATE KEY",
                derBytes: Self.sec1DER(
                    scalar: Array(key.rawRepresentation), curve: Self.prime256v1,
                    publicPoint: Array(key.publicKey.x963Representation)))
        case (.p384(let key), false):
            document = PEMDocument(
                type: "EC PRIVATE KEY",
                derBytes: Self.sec1DER(
                    scalar: Array(key.rawRepresentation), curve: Self.secp384r1,
                    publicPoint: Array(key.publicKey.x963Representation)))
        case (.rsa(let key), false):
            document = PEMDocument(type: "RSA PRIVATE KEY", derBytes: Array(key.derRepresentation))
        case (.p256(let key), true):
            document = PEMDocument(type: "PRIVATE KEY", derBytes: Array(key.derRepresentation))
        case (.p384(let key), true):
            document = PEMDocument(type: "PRIVATE KEY", derBytes: Array(key.derRepresentation))
        case (.rsa(let key), true):
            document = PEMDocument(type: "PRIVATE KEY", derBytes: Array(key.pkcs8DERRepresentation))
        }
        return document.pemString + "\n"
    }

    public var certificateKey: Certificate.PrivateKey {
        switch backing {
        case .p256(let key): Certificate.PrivateKey(key)
        case .p384(let key): Certificate.PrivateKey(key)
        case .rsa(let key): Certificate.PrivateKey(key)
        }
    }

    public var publicKey: Certificate.PublicKey {
        switch backing {
        case .p256(let key): Certificate.PublicKey(key.publicKey)
        case .p384(let key): Certificate.PublicKey(key.publicKey)
        case .rsa(let key): Certificate.PublicKey(key.publicKey)
        }
    }

    /// What Go's x509.CreateCertificateRequest picks for each key (SHA-256 for P-256 and RSA, SHA-384 for P-384).
    var signatureAlgorithm: Certificate.SignatureAlgorithm {
        switch backing {
        case .p256: .ecdsaWithSHA256
        case .p384: .ecdsaWithSHA384
        case .rsa: .sha256WithRSAEncryption
        }
    }

    // MARK: - Encodings

    static let prime256v1: ASN1ObjectIdentifier = [1, 2, 840, 10045, 3, 1, 7]
    static let secp384r1: ASN1ObjectIdentifier = [1, 3, 132, 0, 34]
    static let ecPublicKey: ASN1ObjectIdentifier = [1, 2, 840, 10045, 2, 1]
    static let rsaEncryption: ASN1ObjectIdentifier = [1, 2, 840, 113_549, 1, 1, 1]

    /// RFC 5915 ECPrivateKey with the curve and the public key, as Go's x509.MarshalECPrivateKey writes it
    /// (swift-crypto only writes PKCS#8).
    static func sec1DER(scalar: [UInt8], curve: ASN1ObjectIdentifier, publicPoint: [UInt8]) -> [UInt8] {
        var serializer = DER.Serializer()
        // Serializing integers, octet strings, OIDs and bit strings cannot fail.
        try! serializer.appendConstructedNode(identifier: .sequence) { coder in
            try coder.serialize(1)
            try coder.serialize(ASN1OctetString(contentBytes: scalar[...]))
            try coder.serialize(explicitlyTaggedWithTagNumber: 0, tagClass: .contextSpecific) { try $0.serialize(curve) }
            try coder.serialize(explicitlyTaggedWithTagNumber: 1, tagClass: .contextSpecific) {
                try $0.serialize(ASN1BitString(bytes: publicPoint[...]))
            }
        }
        return serializer.serializedBytes
    }

    private static func fromSEC1(_ der: [UInt8]) throws(WorkloadIdentityError) -> WorkloadKey {
        let scalar: ArraySlice<UInt8>
        let curve: ASN1ObjectIdentifier?
        do {
            (scalar, curve) = try DER.sequence(try DER.parse(der), identifier: .sequence) { nodes in
                let version = try Int(derEncoded: &nodes)
                guard version == 1 else { throw WorkloadIdentityError("EC PRIVATE KEY: version \(version), expected 1") }
                let scalar = try ASN1OctetString(derEncoded: &nodes).bytes
                let curve = try DER.optionalExplicitlyTagged(&nodes, tagNumber: 0, tagClass: .contextSpecific) {
                    try ASN1ObjectIdentifier(derEncoded: $0)
                }
                _ = try DER.optionalExplicitlyTagged(&nodes, tagNumber: 1, tagClass: .contextSpecific) {
                    try ASN1BitString(derEncoded: $0)
                }
                return (scalar, curve)
            }
        } catch {
            throw WorkloadIdentityError("the EC PRIVATE KEY is not a valid SEC1 ECPrivateKey: \(error)")
        }
        return try fromECScalar(scalar, curve: curve, encoding: "EC PRIVATE KEY")
    }

    private static func fromECScalar(_ scalar: ArraySlice<UInt8>, curve: ASN1ObjectIdentifier?, encoding: String)
        throws(WorkloadIdentityError) -> WorkloadKey
    {
        // Without named-curve parameters the scalar's length is the only hint; both curves have distinct lengths.
        let isP256 = curve.map { $0 == prime256v1 } ?? (scalar.count == 32)
        let isP384 = curve.map { $0 == secp384r1 } ?? (scalar.count == 48)
        do {
            if isP256 { return WorkloadKey(backing: .p256(try P256.Signing.PrivateKey(rawRepresentation: scalar))) }
            if isP384 { return WorkloadKey(backing: .p384(try P384.Signing.PrivateKey(rawRepresentation: scalar))) }
        } catch {
            throw WorkloadIdentityError("the \(encoding) key is not a valid \(isP256 ? "P-256" : "P-384") private key: \(error)")
        }
        throw WorkloadIdentityError(
            "the \(encoding) key is on curve \(curve.map { String(describing: $0) } ?? "unknown"); only P-256 and P-384 are supported")
    }

    private static func fromRSA(_ der: [UInt8], encoding: String) throws(WorkloadIdentityError) -> WorkloadKey {
        let key: _RSA.Signing.PrivateKey
        do {
            key = try _RSA.Signing.PrivateKey(unsafeDERRepresentation: der)
        } catch {
            throw WorkloadIdentityError("the \(encoding) RSA private key does not parse: \(error)")
        }
        guard key.keySizeInBits >= WorkloadKeyAlgorithm.minimumRSABits else {
            throw WorkloadIdentityError(
                "the RSA private key has \(key.keySizeInBits) bits; at least \(WorkloadKeyAlgorithm.minimumRSABits) are required")
        }
        return WorkloadKey(backing: .rsa(key))
    }

    private static func fromPKCS8(_ der: [UInt8]) throws(WorkloadIdentityError) -> WorkloadKey {
        let algorithm: ASN1ObjectIdentifier
        let parameters: ASN1ObjectIdentifier?
        let inner: ArraySlice<UInt8>
        do {
            (algorithm, parameters, inner) = try DER.sequence(try DER.parse(der), identifier: .sequence) { nodes in
                _ = try Int(derEncoded: &nodes)
                let (algorithm, parameters) = try DER.sequence(of: ASN1Any.self, identifier: .sequence, nodes: &nodes)
                    .algorithmAndParameters()
                let inner = try ASN1OctetString(derEncoded: &nodes).bytes
                // Optional attributes and public key follow; they add nothing we need.
                while nodes.next() != nil {}
                return (algorithm, parameters, inner)
            }
        } catch {
            throw WorkloadIdentityError("the PRIVATE KEY is not a valid PKCS#8 PrivateKeyInfo: \(error)")
        }
        switch algorithm {
        case rsaEncryption:
            return try fromRSA(Array(inner), encoding: "PKCS#8")
        case ecPublicKey:
            let scalar: ArraySlice<UInt8>
            do {
                scalar = try DER.sequence(try DER.parse(inner), identifier: .sequence) { nodes in
                    _ = try Int(derEncoded: &nodes)
                    let scalar = try ASN1OctetString(derEncoded: &nodes).bytes
                    while nodes.next() != nil {}
                    return scalar
                }
            } catch {
                throw WorkloadIdentityError("the PKCS#8 EC private key is not a valid ECPrivateKey: \(error)")
            }
            return try fromECScalar(scalar, curve: parameters, encoding: "PKCS#8")
        default:
            throw WorkloadIdentityError(
                "the PKCS#8 private key uses algorithm \(algorithm); only ECDSA (P-256, P-384) and RSA are supported")
        }
    }
}

extension Array where Element == ASN1Any {
    /// An AlgorithmIdentifier's OID and, when it is one, its OID parameter (the named curve for EC keys).
    fileprivate func algorithmAndParameters() throws -> (ASN1ObjectIdentifier, ASN1ObjectIdentifier?) {
        guard let first else { throw WorkloadIdentityError("empty AlgorithmIdentifier") }
        let algorithm = try ASN1ObjectIdentifier(asn1Any: first)
        let parameters = count > 1 ? try? ASN1ObjectIdentifier(asn1Any: self[1]) : nil
        return (algorithm, parameters)
    }
}
