import Testing
import WorkloadIdentity
import X509

/// RSA generation is the slow part of these tests in debug builds; one shared key serves every test that
/// only needs "some RSA key".
let sharedRSAKey: WorkloadKey = {
    do { return try WorkloadKey.generate(.rsa(bits: 2048)) } catch { fatalError("RSA 2048 generation failed: \(error)") }
}()

let testIdentity = SpiffeIdentity(trustDomain: "cluster.local", namespace: "default", serviceAccount: "bookinfo-productpage")

/// A fixed instant (2026-11-21T10:04:05Z), so validity windows are the same on every run.
let fixedNow = WallClockTime(secondsSinceEpoch: 1_795_255_445)

/// A deterministic generator (SplitMix64) so randomised rotation tests are reproducible.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The message of the WorkloadIdentityError thrown by `body`; nil when it does not throw, and a marker
/// that matches no expectation when it throws anything else.
func errorMessage(_ body: () throws -> Void) -> String? {
    do {
        try body()
        return nil
    } catch let error as WorkloadIdentityError {
        return error.description
    } catch {
        return "<unexpected \(type(of: error))>"
    }
}

func errorMessage(_ body: () async throws -> Void) async -> String? {
    do {
        try await body()
        return nil
    } catch let error as WorkloadIdentityError {
        return error.description
    } catch {
        return "<unexpected \(type(of: error))>"
    }
}

/// A CA fixed at `fixedNow`, and a chain it issued for `identity` with `key`.
func issue(for identity: SpiffeIdentity = testIdentity, key: WorkloadKey, validity: Duration = .seconds(86400),
           authority: LocalCertificateAuthority? = nil) async throws -> (LocalCertificateAuthority, CertificateChain)
{
    let authority = try authority ?? LocalCertificateAuthority.create(trustDomain: identity.trustDomain, now: { fixedNow })
    let csr = try CertificateSigningRequestBuilder.pem(for: identity, key: key)
    let pems = try await authority.sign(csrPEM: csr, validity: validity)
    return (authority, try CertificateChain(pems: pems))
}
