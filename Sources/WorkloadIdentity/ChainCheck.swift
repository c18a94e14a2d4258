@_spi(FixedExpiryValidationTime) import X509
import SwiftASN1

public enum ChainCheck {
    /// The leaf is valid at `now` (notBefore <= now < notAfter); error says "expired at <rfc3339>" or
    /// "not valid before <rfc3339>".
    public static func checkCurrent(_ chain: CertificateChain, at now: WallClockTime) throws(WorkloadIdentityError) {
        let notBefore = chain.notBefore, notAfter = chain.notAfter
        let who = chain.leafURIs.first.map { "the certificate for \($0)" } ?? "the leaf certificate"
        guard now >= notBefore else {
            throw WorkloadIdentityError("\(who) is not valid before \(notBefore.rfc3339) (now \(now.rfc3339)); check the clocks")
        }
        guard now < notAfter else {
            throw WorkloadIdentityError("\(who) expired at \(notAfter.rfc3339) (now \(now.rfc3339))")
        }
    }

    /// What the agent checks on a CA's answer: at least two certificates (Istio: "invalid empty
    /// CertChain" otherwise), the leaf carries exactly `identity`'s URI, the leaf's public key is `key`'s,
    /// the leaf is current, and the chain verifies (signatures, CA constraints) up to its last
    /// certificate as the trust anchor (swift-certificates' Verifier with RFC5280Policy at `now`).
    public static func checkIssued(_ chain: CertificateChain, for identity: SpiffeIdentity, key: WorkloadKey,
                                   at now: WallClockTime) async throws(WorkloadIdentityError)
    {
        guard chain.certificates.count >= 2 else {
            throw WorkloadIdentityError(
                "invalid empty CertChain: the CA returned \(chain.certificates.count) certificate; expected the leaf followed by its issuers up to the root")
        }
        let uris = chain.leafURIs
        guard uris == [identity.uri] else {
            throw WorkloadIdentityError(
                "the issued certificate names \(uris.isEmpty ? "no URI" : uris.joined(separator: ", ")); expected exactly \(identity.uri)")
        }
        guard chain.leaf.publicKey == key.publicKey else {
            throw WorkloadIdentityError(
                "the issued certificate for \(identity.uri) carries a public key that is not the CSR's \(key.algorithm) key")
        }
        try checkCurrent(chain, at: now)

        let root = chain.certificates[chain.certificates.count - 1]
        let intermediates = chain.certificates.dropFirst().dropLast()
        var verifier = Verifier(rootCertificates: CertificateStore([root])) {
            RFC5280Policy(fixedExpiryValidationTime: now.date)
            IssuedWorkloadCertificatePolicy(expectedURI: identity.uri)
        }
        let result = await verifier.validate(leaf: chain.leaf, intermediates: CertificateStore(intermediates))
        switch result {
        case .validCertificate:
            return
        case .couldNotValidate(let failures):
            let reasons = failures.map { $0.policyFailureReason.description }
            throw WorkloadIdentityError(
                "the certificate chain for \(identity.uri) does not verify up to its last certificate (\(root.subject))"
                    + (reasons.isEmpty ? ": no issuer's signature matches" : ": " + reasons.joined(separator: "; ")))
        }
    }
}

/// Istio's CA issues leaves with an empty subject, so their subjectAltName is critical (RFC 5280
/// §4.2.1.6); RFC5280Policy does not claim that extension, and the Verifier rejects unclaimed critical
/// extensions. This policy claims it and checks the only name that matters, the SPIFFE URI.
struct IssuedWorkloadCertificatePolicy: VerifierPolicy {
    let verifyingCriticalExtensions: [ASN1ObjectIdentifier] = [.X509ExtensionID.subjectAlternativeName]
    let expectedURI: String

    func chainMeetsPolicyRequirements(chain: UnverifiedCertificateChain) async -> PolicyEvaluationResult {
        let uris = CertificateChain.uris(of: chain.leaf)
        guard uris == [expectedURI] else {
            return .failsToMeetPolicy(reason: "leaf URIs \(uris) are not exactly [\(expectedURI)]")
        }
        return .meetsPolicy
    }
}
