import SecretDiscovery
import Testing

/// Envoy's state-of-the-world rules, request by request (SDS.md §5).
@Suite struct SecretStreamStateTests {
    let secret = SecretStreamState.secretTypeURL

    @Test func firstRequestNeedsANode() {
        var state = SecretStreamState()
        #expect(state.receive(nodeID: nil, typeURL: secret, resourceNames: ["default"], responseNonce: "", errorMessage: nil)
            == .fail(SecretRequestError("missing node information: the first request on a stream must carry node.id")))
        var other = SecretStreamState()
        #expect(other.receive(nodeID: "", typeURL: secret, resourceNames: ["default"], responseNonce: "", errorMessage: nil) != .respond(["default"]))
    }

    @Test func respondsToNewWatchThenIgnoresACK() {
        var state = SecretStreamState()
        #expect(state.receive(nodeID: "n", typeURL: secret, resourceNames: ["default", "ROOTCA", "default"], responseNonce: "", errorMessage: nil)
            == .respond(["default", "ROOTCA"]))
        state.sent(nonce: "a")
        // Only the first message carries the node.
        #expect(state.receive(nodeID: nil, typeURL: secret, resourceNames: ["default", "ROOTCA"], responseNonce: "a", errorMessage: nil)
            == .ignore(.acknowledged))
        #expect(state.nonceAcknowledged == "a")
    }

    @Test func nackKeepsEverything() {
        var state = SecretStreamState()
        _ = state.receive(nodeID: "n", typeURL: secret, resourceNames: ["default"], responseNonce: "", errorMessage: nil)
        state.sent(nonce: "a")
        #expect(state.receive(nodeID: nil, typeURL: secret, resourceNames: ["default"], responseNonce: "a", errorMessage: "bad key")
            == .ignore(.rejected(message: "bad key")))
        #expect(state.watches("default"))
        #expect(state.nonceAcknowledged == "")
    }

    @Test func staleNonceIsIgnored() {
        var state = SecretStreamState()
        _ = state.receive(nodeID: "n", typeURL: secret, resourceNames: ["default"], responseNonce: "", errorMessage: nil)
        state.sent(nonce: "a")
        state.sent(nonce: "b")
        #expect(state.receive(nodeID: nil, typeURL: secret, resourceNames: ["default", "ROOTCA"], responseNonce: "a", errorMessage: nil)
            == .ignore(.staleNonce))
        #expect(!state.watches("ROOTCA"))
    }

    @Test func ackAddingNamesGetsOnlyTheNewOnes() {
        var state = SecretStreamState()
        _ = state.receive(nodeID: "n", typeURL: secret, resourceNames: ["default"], responseNonce: "", errorMessage: nil)
        state.sent(nonce: "a")
        #expect(state.receive(nodeID: nil, typeURL: secret, resourceNames: ["default", "ROOTCA"], responseNonce: "a", errorMessage: nil)
            == .respond(["ROOTCA"]))
        state.sent(nonce: "b")
        // Removing a name needs no answer.
        #expect(state.receive(nodeID: nil, typeURL: secret, resourceNames: ["ROOTCA"], responseNonce: "b", errorMessage: nil)
            == .ignore(.acknowledged))
        #expect(!state.watches("default"))
    }

    @Test func emptyNamesUnsubscribe() {
        var state = SecretStreamState()
        _ = state.receive(nodeID: "n", typeURL: secret, resourceNames: ["default"], responseNonce: "", errorMessage: nil)
        state.sent(nonce: "a")
        #expect(state.receive(nodeID: nil, typeURL: secret, resourceNames: [], responseNonce: "a", errorMessage: nil) == .ignore(.unsubscribed))
        #expect(!state.watches("default"))
        // A later request starts a new watch.
        #expect(state.receive(nodeID: nil, typeURL: secret, resourceNames: ["ROOTCA"], responseNonce: "a", errorMessage: nil) == .respond(["ROOTCA"]))
    }

    @Test func otherTypesAreRefused() {
        var state = SecretStreamState()
        let decision = state.receive(nodeID: "n", typeURL: "type.googleapis.com/envoy.config.cluster.v3.Cluster",
                                     resourceNames: ["x"], responseNonce: "", errorMessage: nil)
        guard case .fail(let error) = decision else { Issue.record("want a failure, got \(decision)"); return }
        #expect(error.description.contains("envoy.config.cluster.v3.Cluster"))
    }

    @Test func resourceNames() throws {
        #expect(try SecretResource(name: "default") == .workloadCertificate(name: "default"))
        #expect(try SecretResource(name: "ROOTCA") == .rootCertificate)
        #expect(try SecretResource(name: "file-cert:/a/c.pem~/a/k.pem") == .fileCertificate(name: "file-cert:/a/c.pem~/a/k.pem", certificatePath: "/a/c.pem", keyPath: "/a/k.pem"))
        #expect(try SecretResource(name: "file-root:/a/r.pem") == .fileRoot(name: "file-root:/a/r.pem", path: "/a/r.pem"))
        #expect(try SecretResource(name: "file-root:system") == .systemRoots)
        #expect(try SecretResource(name: "outbound|9080||reviews") == .workloadCertificate(name: "outbound|9080||reviews"))
        #expect(throws: SecretRequestError.self) { try SecretResource(name: "file-cert:/a/c.pem") }
        #expect(throws: SecretRequestError.self) { try SecretResource(name: "file-root:") }
    }
}
