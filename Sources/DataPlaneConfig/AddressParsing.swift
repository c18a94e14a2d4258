import Capture
import ConfigFormats

extension BootstrapParser {
    /// An `envoy.config.core.v3.Address`: a `socket_address` or a `pipe` (Unix socket).
    mutating func address(_ value: JSONValue, path: JSONPath, listening: Bool) throws(ConfigError) -> ProxyAddress {
        var reader = try MessageReader(value, message: "Address", path: path)
        try reader.refuse("envoy_internal_address", "internal listeners are not supported by sluice-proxy")
        let socket = try reader.message("socket_address", type: "SocketAddress")
        let pipe = try reader.message("pipe", type: "Pipe")
        try reader.finish(warnings: &warnings)
        switch (socket, pipe) {
        case (var socket?, nil):
            return .socket(try socketEndpoint(&socket))
        case (nil, var pipe?):
            let socketPath = try pipe.requiredString("path", why: "the Unix socket's path")
            if try pipe.uint32("mode") != nil, listening {
                warnings.append("\(pipe.path(of: "mode")): accepted and ignored: the socket file gets the process umask")
            }
            try pipe.finish(warnings: &warnings)
            return .pipe(path: socketPath)
        case (nil, nil):
            throw ConfigError("\(path): needs a socket_address (or a pipe)")
        case (.some, .some):
            throw ConfigError("\(path): socket_address and pipe are alternatives; keep one")
        }
    }

    /// A listener's address: IP sockets only, since captured traffic arrives over TCP/IP.
    mutating func listenerEndpoint(_ value: JSONValue, path: JSONPath) throws(ConfigError) -> Endpoint {
        switch try address(value, path: path, listening: true) {
        case .socket(let endpoint):
            return endpoint
        case .pipe:
            throw ConfigError("\(path): sluice-proxy listens on IP sockets only; a pipe listener is not supported")
        }
    }

    /// A `SocketAddress`: an IP literal (sluice-proxy resolves no names, and Envoy needs literals in
    /// STATIC clusters and listeners too) and a TCP port.
    mutating func socketEndpoint(_ reader: inout MessageReader) throws(ConfigError) -> Endpoint {
        let text = try reader.requiredString("address", why: "an IP address")
        guard let ip = IPAddress(text) else {
            throw ConfigError("\(reader.path(of: "address")): '\(text)' is not an IP address;"
                + " sluice-proxy resolves no names, give an IPv4 or IPv6 address")
        }
        let port = try reader.integer("port_value", in: 0...65535) ?? 0
        if try reader.enumeration("protocol", values: ["TCP", "UDP"]) == "UDP" {
            throw ConfigError("\(reader.path(of: "protocol")): UDP is not supported by sluice-proxy (TCP)")
        }
        try reader.refuse("named_port", "named ports are not supported by sluice-proxy; give port_value")
        try reader.refuse("resolver_name", "custom resolvers are not supported by sluice-proxy; give an IP address")
        try reader.refuse("network_namespace_filepath", "sluice-proxy listens in its own network namespace only")
        if try reader.bool("ipv4_compat") == true {
            throw ConfigError("\(reader.path(of: "ipv4_compat")): IPv4 on an IPv6 socket is not supported by"
                + " sluice-proxy; list the IPv4 address in additional_addresses instead")
        }
        try reader.finish(warnings: &warnings)
        return Endpoint(ip, UInt16(port))
    }

    /// A source address to bind upstream connections to: any port (0), as Envoy's passthrough clusters use.
    mutating func sourceAddress(_ value: JSONValue, path: JSONPath) throws(ConfigError) -> IPAddress {
        var reader = try MessageReader(value, message: "SocketAddress", path: path)
        let endpoint = try socketEndpoint(&reader)
        if endpoint.port != 0 {
            throw ConfigError("\(reader.path(of: "port_value")): binding upstream connections to a fixed source port"
                + " is not supported by sluice-proxy; use 0")
        }
        return endpoint.address
    }
}
