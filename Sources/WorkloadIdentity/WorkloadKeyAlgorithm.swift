/// Istio's key choices (SDS.md §3 "CSR").
public enum WorkloadKeyAlgorithm: Sendable, Hashable, CustomStringConvertible {
    case ecdsaP256
    case ecdsaP384
    case rsa(bits: Int)

    /// Istio refuses shorter RSA keys (`WORKLOAD_RSA_KEY_SIZE` below 2048).
    public static let minimumRSABits = 2048
    /// Not an Istio limit: a guard so a typo cannot make key generation run for minutes.
    public static let maximumRSABits = 8192

    /// From ECC_SIGNATURE_ALGORITHM ("" or "RSA" → RSA; "ECDSA" → EC), ECC_CURVE ("P256" default, "P384"),
    /// WORKLOAD_RSA_KEY_SIZE (default 2048; below 2048 refused, as Istio does). Errors name the variable.
    public static func fromIstioSettings(eccSignatureAlgorithm: String, eccCurve: String, rsaKeySize: Int)
        throws(WorkloadIdentityError) -> WorkloadKeyAlgorithm
    {
        switch eccSignatureAlgorithm {
        case "", "RSA":
            guard rsaKeySize >= minimumRSABits else {
                throw WorkloadIdentityError(
                    "WORKLOAD_RSA_KEY_SIZE=\(rsaKeySize): RSA keys must be at least \(minimumRSABits) bits (as Istio requires); set 2048, 3072 or 4096")
            }
            guard rsaKeySize <= maximumRSABits else {
                throw WorkloadIdentityError(
                    "WORKLOAD_RSA_KEY_SIZE=\(rsaKeySize): RSA keys larger than \(maximumRSABits) bits are not supported; set 2048, 3072 or 4096")
            }
            return .rsa(bits: rsaKeySize)
        case "ECDSA":
            switch eccCurve {
            case "", "P256": return .ecdsaP256
            case "P384": return .ecdsaP384
            default:
                throw WorkloadIdentityError("ECC_CURVE=\(eccCurve): unsupported curve; use P256 (the default) or P384")
            }
        default:
            throw WorkloadIdentityError(
                "ECC_SIGNATURE_ALGORITHM=\(eccSignatureAlgorithm): unsupported algorithm; use ECDSA, or leave it unset for RSA")
        }
    }

    public var description: String {
        switch self {
        case .ecdsaP256: "ECDSA P-256"
        case .ecdsaP384: "ECDSA P-384"
        case .rsa(let bits): "RSA \(bits)"
        }
    }
}
