import GRPCCore
import TextFiles

/// The per-call headers Istio's CA client attaches (SDS.md §3): the bearer token, re-read from its
/// file on every call because kubelet rotates projected tokens in place; the cluster id; CA_HEADER_*.
struct CallMetadata: Sendable {
    var tokenPath: String?
    var clusterID: String
    /// Lower-cased names, validated at init.
    var extraHeaders: [(name: String, value: String)]

    /// A projected service-account token is a few KB; anything past this is not a token.
    static let tokenSizeLimit = 1 << 20

    init(tokenPath: String?, clusterID: String, extraHeaders: [String: String]) throws(IstioCAError) {
        self.tokenPath = tokenPath
        self.clusterID = clusterID
        var headers: [(name: String, value: String)] = []
        for (name, value) in extraHeaders.sorted(by: { $0.key < $1.key }) {
            let lowered = name.lowercased()
            guard Self.isValidHeaderName(lowered) else {
                throw IstioCAError(
                    "CA_HEADER_\(name): \"\(lowered)\" is not a gRPC metadata name; use letters, digits, '-', '_' and '.', not ending in -bin",
                    isRetryable: false)
            }
            guard value.utf8.allSatisfy({ $0 >= 0x20 && $0 < 0x7f }) else {
                throw IstioCAError("CA_HEADER_\(name): the value must be printable ASCII", isRetryable: false)
            }
            headers.append((lowered, value))
        }
        self.extraHeaders = headers
    }

    static func isValidHeaderName(_ name: String) -> Bool {
        !name.isEmpty && !name.hasPrefix(":") && !name.hasSuffix("-bin")
            && name.utf8.allSatisfy { byte in
                (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z")) || (byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9"))
                    || byte == UInt8(ascii: "-") || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ".")
            }
    }

    /// The token as Istio sends it: the file's contents trimmed; nil when there is no token path, the
    /// file is missing, or it is empty (Istio then sends no authorization header at all).
    func readToken() throws(IstioCAError) -> String? {
        guard let tokenPath, !tokenPath.isEmpty else { return nil }
        let contents: String
        do {
            contents = try TextFile.read(tokenPath, limit: Self.tokenSizeLimit)
        } catch {
            if error.isMissing { return nil }
            throw IstioCAError("CA token \(error): make the token file readable by the agent", isRetryable: true)
        }
        let token = Self.trimmed(contents)
        return token.isEmpty ? nil : token
    }

    func metadata() throws(IstioCAError) -> Metadata {
        var metadata = Metadata()
        if let token = try readToken() {
            metadata.addString("Bearer \(token)", forKey: "authorization")
        }
        if !clusterID.isEmpty {
            metadata.addString(clusterID, forKey: "clusterid")
        }
        for header in extraHeaders {
            metadata.addString(header.value, forKey: header.name)
        }
        return metadata
    }

    /// Go's strings.TrimSpace, which Istio applies to the token file. (Character's whitespace test, not
    /// a list of scalars: "\r\n" is one Character.)
    static func trimmed(_ text: String) -> String {
        guard let first = text.firstIndex(where: { !$0.isWhitespace }),
              let last = text.lastIndex(where: { !$0.isWhitespace })
        else { return "" }
        return String(text[first...last])
    }
}
