/// spiffe://<trust domain>/ns/<namespace>/sa/<service account>
public struct SpiffeIdentity: Sendable, Hashable, CustomStringConvertible {
    public var trustDomain: String
    public var namespace: String
    public var serviceAccount: String

    public init(trustDomain: String, namespace: String, serviceAccount: String) {
        self.trustDomain = trustDomain
        self.namespace = namespace
        self.serviceAccount = serviceAccount
    }

    /// Strict: scheme spiffe, non-empty parts, exactly /ns/<ns>/sa/<sa>. nil otherwise.
    public init?(uri: String) {
        let scheme = "spiffe://"
        guard uri.hasPrefix(scheme) else { return nil }
        let parts = uri.dropFirst(scheme.count).split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 5, parts[1] == "ns", parts[3] == "sa" else { return nil }
        let trustDomain = parts[0], namespace = parts[2], serviceAccount = parts[4]
        // Query, fragment, whitespace and userinfo would make the URI mean something other than the identity.
        for part in [trustDomain, namespace, serviceAccount] {
            guard !part.isEmpty,
                  !part.contains(where: { $0 == "?" || $0 == "#" || $0 == "@" || $0.isWhitespace })
            else { return nil }
        }
        self.init(trustDomain: String(trustDomain), namespace: String(namespace), serviceAccount: String(serviceAccount))
    }

    public var uri: String {
        "spiffe://\(trustDomain)/ns/\(namespace)/sa/\(serviceAccount)"
    }

    public var description: String { uri }
}
