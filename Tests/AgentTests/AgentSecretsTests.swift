import FoundationEssentials
import Glibc
import PodLab
import SecretDiscovery
import Testing
import TextFiles
import WorkloadIdentity

/// The agent serving SDS: the built binary, started as root, switching to 1337, with the local CA.
@Suite struct AgentSecretsTests {
    static let identity = "spiffe://cluster.local/ns/default/sa/reviews"

    /// The agent's workload socket, once it answers.
    private func socket(_ harness: AgentHarness) -> String? {
        let path = harness.root + "/var/run/secrets/workload-spiffe-uds/socket"
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            if WorkloadSocket.isServed(path) { return path }
            usleep(10_000)
        }
        return nil
    }

    @Test func servesTheWorkloadCertificateFromTheLocalCAOnAPrivateSocket() async throws {
        let harness = try AgentHarness()
        try harness.start(environment: try harness.environment(["ECC_SIGNATURE_ALGORITHM": "ECDSA"]))
        let path = try #require(socket(harness), "no SDS socket: \(harness.agentOutput)")
        var status = stat()
        #expect(stat(path, &status) == 0 && status.st_uid == 1337 && status.st_mode & 0o777 == 0o600)
        #expect(stat(harness.root + "/var/run/secrets/workload-spiffe-uds", &status) == 0 && status.st_mode & 0o777 == 0o750)

        let client = try SecretDiscoveryClient(socketPath: path)
        let response = try await client.fetch(["default", "ROOTCA"])
        let secrets = try response.secrets()
        let chain = try CertificateChain(pem: String(decoding: secrets[0].tlsCertificate.certificateChain.inlineBytes, as: UTF8.self))
        #expect(chain.leafURIs == [Self.identity])
        #expect(String(decoding: secrets[0].tlsCertificate.privateKey.inlineBytes, as: UTF8.self).hasPrefix("-----BEGIN EC PRIVATE KEY-----"))
        // The root persisted on first start, its key owner-only.
        let root = try TextFile.read(harness.root + "/var/lib/sluice/ca/root-cert.pem")
        #expect(String(decoding: secrets[1].validationContext.trustedCa.inlineBytes, as: UTF8.self) == root)
        #expect(stat(harness.root + "/var/lib/sluice/ca/root-key.pem", &status) == 0 && status.st_mode & 0o777 == 0o600)
        await client.close()
        #expect(harness.agentOutput.contains("SDS server listening on \(path)"))
    }

    @Test func outputCertsAreWrittenForOtherContainers() async throws {
        let harness = try AgentHarness()
        try harness.start(environment: try harness.environment(["ECC_SIGNATURE_ALGORITHM": "ECDSA", "OUTPUT_CERTS": "./etc/istio-output-certs"]))
        _ = try #require(socket(harness), "no SDS socket: \(harness.agentOutput)")
        // The warm-up issues the certificate without any request.
        let chainPath = harness.root + "/etc/istio-output-certs/cert-chain.pem"
        let deadline = ContinuousClock.now + .seconds(10)
        while access(chainPath, F_OK) != 0, ContinuousClock.now < deadline { usleep(10_000) }
        let chain = try CertificateChain(pem: try TextFile.read(chainPath))
        #expect(chain.leafURIs == [Self.identity])
        let key = try TextFile.read(harness.root + "/etc/istio-output-certs/key.pem")
        _ = try CertifiedKey(chain: chain, keyPEM: key)
    }

    @Test func certificateSettingsAreCheckedBeforeAnythingStarts() throws {
        for (variable, value, mention) in [
            ("CA_PROVIDER", "VaultCA", "CA_PROVIDER"),
            ("WORKLOAD_RSA_KEY_SIZE", "1024", "WORKLOAD_RSA_KEY_SIZE"),
            ("SECRET_GRACE_PERIOD_RATIO", "1.5", "SECRET_GRACE_PERIOD_RATIO"),
            ("ECC_CURVE", "P521", "ECC_CURVE"),
        ] {
            let harness = try AgentHarness()
            let (code, output) = try harness.runToExit(["proxy"], environment: try harness.environment([variable: value, "ECC_SIGNATURE_ALGORITHM": variable == "ECC_CURVE" ? "ECDSA" : ""]))
            #expect(code == 2, "\(variable)=\(value): \(output)")
            #expect(output.contains(mention), "\(output)")
            #expect(harness.dataPlaneEvents().isEmpty)
        }
    }

    @Test func istiosCAWithoutItsRootIsAConfigurationError() throws {
        let harness = try AgentHarness()
        var environment = try harness.environment()
        environment["CA_PROVIDER"] = nil
        let (code, output) = try harness.runToExit(["proxy"], environment: environment)
        #expect(code == 2, "\(output)")
        #expect(output.contains(harness.root + "/var/run/secrets/istio/root-cert.pem"), "\(output)")
        #expect(output.contains("CA_PROVIDER=local"), "\(output)")
        #expect(harness.dataPlaneEvents().isEmpty)
    }
}
