import FoundationEssentials
import IstioCA
import Logging
import PodLab
import SDSProtos
import SecretDiscovery
import Testing
import WorkloadIdentity

/// The store with Istio's CA client against a CA speaking IstioCertificateService over TLS with token
/// checks (the same test CA as IstioCATests, compiled in here too).
@Suite(.serialized) struct IstioCAIntegrationTests {
    @Test func certificatesFromIstiosCAAreCheckedAndServed() async throws {
        let ca = try await TestIstioCA.start()
        let scratch = try TemporaryDirectory(prefix: "sluice-sds-istioca-token")
        defer { scratch.remove() }
        try scratch.write("istio-token", "test-token\n")
        let signer = try IstioCAClient(
            configuration: IstioCAClientConfiguration(address: ca.address, rootCertificatesPEM: ca.tlsRootCertificatePEM,
                                                      serverName: TestIstioCA.serverName, tokenPath: scratch.file("istio-token"),
                                                      clusterID: "Kubernetes"),
            logger: Logger(label: "ca"))
        let harness = try SDSHarness(name: "istioca", signer: signer)
        let client = try harness.client()
        let stream = client.openStream()
        stream.send(.secrets(["default", "ROOTCA"], nodeID: SecretDiscoveryServerTests.node))
        let first = try await stream.response()
        let secrets = try first.secrets()
        let chain = try CertificateChain(pem: secrets[0].chainPEM)
        #expect(chain.leafURIs == [SDSHarness.identity.uri])
        #expect(secrets[1].rootsPEM == ca.workloadAuthority.rootCertificatePEM)
        stream.send(.secrets(["default", "ROOTCA"], responseNonce: first.nonce))

        // At rotation the CA answers for another workload: refused, logged, the current certificate stays.
        ca.answer(with: .otherIdentity(SpiffeIdentity(trustDomain: "cluster.local", namespace: "other", serviceAccount: "intruder")))
        harness.clock.advance(by: .seconds(14 * 3600))
        var refusals = 0
        for _ in 0..<100 where refusals == 0 {
            try await Task.sleep(for: .milliseconds(20))
            refusals = harness.log.all.filter { $0.contains("rotation failed") && $0.contains("ns/other/sa/intruder") }.count
        }
        #expect(refusals >= 1, "\(harness.log.all)")
        #expect(await stream.staysQuiet())
        // The CA mends: the next retry succeeds and the new certificate is pushed.
        ca.answer(with: .issue)
        var push: Envoy_Service_Discovery_V3_DiscoveryResponse?
        for _ in 0..<200 where push == nil {
            harness.clock.advance(by: .seconds(1))
            if case .response(let response)? = await stream.next(timeout: .milliseconds(20)) { push = response }
        }
        let rotated = try #require(push)
        #expect(try rotated.secrets().map(\.name) == ["default"])
        #expect(try rotated.secrets()[0].chainPEM != secrets[0].chainPEM)
        stream.cancel()
        await client.close()
        await harness.stop()
        await signer.close()
        await ca.stop()
    }
}
