import Testing
import WorkloadIdentity

@Suite struct SpiffeIdentityTests {
    @Test func formatsAndParsesBack() throws {
        let identity = SpiffeIdentity(trustDomain: "cluster.local", namespace: "istio-system", serviceAccount: "ingress")
        #expect(identity.uri == "spiffe://cluster.local/ns/istio-system/sa/ingress")
        #expect(identity.description == identity.uri)
        let parsed = try #require(SpiffeIdentity(uri: identity.uri))
        #expect(parsed == identity)
        #expect(parsed.trustDomain == "cluster.local")
        #expect(parsed.namespace == "istio-system")
        #expect(parsed.serviceAccount == "ingress")
    }

    @Test(arguments: [
        "",
        "spiffe://",
        "http://cluster.local/ns/default/sa/app",
        "SPIFFE://cluster.local/ns/default/sa/app",
        "spiffe:/cluster.local/ns/default/sa/app",
        "spiffe://cluster.local/ns/default",
        "spiffe://cluster.local/ns/default/sa",
        "spiffe://cluster.local/ns/default/sa/",
        "spiffe:///ns/default/sa/app",
        "spiffe://cluster.local/ns//sa/app",
        "spiffe://cluster.local/namespace/default/sa/app",
        "spiffe://cluster.local/ns/default/serviceaccount/app",
        "spiffe://cluster.local/ns/default/sa/app/extra",
        "spiffe://cluster.local/ns/default/sa/app?x=1",
        "spiffe://user@cluster.local/ns/default/sa/app",
        "spiffe://cluster.local/ns/def ault/sa/app",
    ])
    func refusesAnythingElse(uri: String) {
        #expect(SpiffeIdentity(uri: uri) == nil)
    }
}
