import Foundation

/// A TCP address from an Envoy bootstrap's `socket_address`.
struct SocketAddress: Sendable, Hashable {
    var address: String
    var port: Int
}

/// The parts of an Envoy v3 bootstrap this stand-in acts on: the admin address and the static
/// listeners' addresses. Everything else in the file is accepted and ignored, as Envoy's
/// `--allow-unknown-static-fields` would for unknown fields.
struct BootstrapFile {
    struct Listener: Sendable, Hashable {
        var name: String
        var address: SocketAddress
    }

    var admin: SocketAddress
    var listeners: [Listener]

    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    init(path: String) throws {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw Invalid(description: "cannot read bootstrap \(path): \(error.localizedDescription)")
        }
        guard let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw Invalid(description: "bootstrap \(path) is not a JSON object")
        }
        guard let admin = (root["admin"] as? [String: Any])?["address"],
              let adminAddress = Self.socketAddress(admin) else {
            throw Invalid(description: "bootstrap \(path) has no admin.address.socket_address {address, port_value}")
        }
        self.admin = adminAddress
        let staticListeners = ((root["static_resources"] as? [String: Any])?["listeners"] as? [Any]) ?? []
        listeners = try staticListeners.enumerated().map { index, value in
            guard let listener = value as? [String: Any], let address = Self.socketAddress(listener["address"]) else {
                throw Invalid(description: "bootstrap \(path): static_resources.listeners[\(index)] has no address.socket_address")
            }
            return Listener(name: listener["name"] as? String ?? "listener_\(index)", address: address)
        }
    }

    /// `{"socket_address": {"address": "...", "port_value": N}}`; the port may be a string, as
    /// protobuf's JSON mapping allows for integers.
    private static func socketAddress(_ value: Any?) -> SocketAddress? {
        guard let socket = (value as? [String: Any])?["socket_address"] as? [String: Any],
              let address = socket["address"] as? String else { return nil }
        let port: Int?
        if let number = socket["port_value"] as? Int {
            port = number
        } else if let text = socket["port_value"] as? String {
            port = Int(text)
        } else {
            port = socket["port_value"] == nil ? 0 : nil
        }
        guard let port, (0...65535).contains(port) else { return nil }
        return SocketAddress(address: address, port: port)
    }
}
