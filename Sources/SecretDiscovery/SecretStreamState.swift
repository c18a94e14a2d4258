/// One StreamSecrets stream's view of Envoy's state-of-the-world protocol (SDS.md §5): which names it
/// watches, the nonce last sent, and what each incoming request asks of the server. Pure, so every
/// ACK/NACK/stale-nonce sequence is testable without a socket.
public struct SecretStreamState: Sendable, Equatable {
    /// What to do with one request.
    public enum Decision: Sendable, Equatable {
        /// Send these names (all of a new watch, or only the names an ACK added).
        case respond([String])
        /// An ACK with nothing new, a stale nonce, an unsubscribe or a NACK: nothing to send.
        case ignore(Reason)
        /// Close the stream with this error (a malformed request).
        case fail(SecretRequestError)
    }

    public enum Reason: Sendable, Equatable {
        case acknowledged
        /// The data plane refused the last response; it keeps the secret it had and so does the server.
        case rejected(message: String)
        case staleNonce
        case unsubscribed
    }

    public static let secretTypeURL = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"

    /// The names the stream watches; empty until the first request names some.
    public private(set) var watchedNames: [String] = []
    /// Whether a watch exists (a stream may watch nothing after an unsubscribe).
    public private(set) var isWatching = false
    public private(set) var nonceSent = ""
    public private(set) var nonceAcknowledged = ""
    public private(set) var sawNode = false

    public init() {}

    /// Istio's `ShouldRespond`, in its order.
    public mutating func receive(nodeID: String?, typeURL: String, resourceNames: [String], responseNonce: String,
                                 errorMessage: String?) -> Decision {
        if !sawNode {
            // Envoy sends the node on the first message only (set_node_on_first_message_only).
            guard let nodeID, !nodeID.isEmpty else { return .fail(SecretRequestError("missing node information: the first request on a stream must carry node.id")) }
            sawNode = true
        }
        guard typeURL.isEmpty || typeURL == Self.secretTypeURL else {
            return .fail(SecretRequestError("type_url \"\(typeURL)\" is not served here: this is SDS, which serves \(Self.secretTypeURL)"))
        }
        if let errorMessage {
            return .ignore(.rejected(message: errorMessage))
        }
        if resourceNames.isEmpty {
            // SDS is never a wildcard subscription: no names means the data plane stopped watching.
            watchedNames = []
            isWatching = false
            return .ignore(.unsubscribed)
        }
        let names = Self.unique(resourceNames)
        if responseNonce.isEmpty || !isWatching {
            watchedNames = names
            isWatching = true
            return .respond(names)
        }
        if responseNonce != nonceSent {
            return .ignore(.staleNonce)
        }
        nonceAcknowledged = responseNonce
        let added = names.filter { !watchedNames.contains($0) }
        watchedNames = names
        return added.isEmpty ? .ignore(.acknowledged) : .respond(added)
    }

    /// Records a response that went out.
    public mutating func sent(nonce: String) {
        nonceSent = nonce
    }

    /// Whether a push for `name` concerns this stream.
    public func watches(_ name: String) -> Bool {
        isWatching && watchedNames.contains(name)
    }

    private static func unique(_ names: [String]) -> [String] {
        var seen = Set<String>()
        return names.filter { seen.insert($0).inserted }
    }
}
