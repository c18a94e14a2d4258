import Testing
import WorkloadIdentity

/// Measures, and prints, what a CSR costs in this build; the figures guide warm-up and timeouts.
/// Nothing here asserts on time (machines differ); it asserts only that the work was done.
@Suite struct KeyGenerationTimingTests {
    @Test(arguments: [WorkloadKeyAlgorithm.ecdsaP256, .rsa(bits: 2048)])
    func keyGenerationAndCSR(algorithm: WorkloadKeyAlgorithm) throws {
        let clock = ContinuousClock()
        let rounds = 3
        var generation: Duration = .zero, signing: Duration = .zero
        for _ in 0..<rounds {
            let start = clock.now
            let key = try WorkloadKey.generate(algorithm)
            let generated = clock.now
            let csr = try CertificateSigningRequestBuilder.pem(for: testIdentity, key: key)
            signing += clock.now - generated
            generation += generated - start
            #expect(csr.hasPrefix("-----BEGIN CERTIFICATE REQUEST-----"))
        }
        print("timing \(algorithm): key generation \(generation / rounds) per key, CSR \(signing / rounds) per CSR (mean of \(rounds))")
    }
}
