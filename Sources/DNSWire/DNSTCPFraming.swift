/// DNS over TCP: each message prefixed by its length as 2 bytes, big-endian (RFC 1035 §4.2.2).
public enum DNSTCPFraming {
    /// Precondition: count ≤ 65535 (`DNSMessage.encode` never produces more for a real message).
    public static func frame(_ message: [UInt8]) -> [UInt8] {
        precondition(message.count <= 0xFFFF, "a DNS message over TCP has at most 65535 bytes, this one has \(message.count)")
        var framed: [UInt8] = []
        framed.reserveCapacity(message.count + 2)
        framed.append(UInt8(message.count >> 8))
        framed.append(UInt8(message.count & 0xFF))
        framed.append(contentsOf: message)
        return framed
    }
}

/// Splits a TCP byte stream into messages, however the bytes arrive. Holds at most what the caller
/// has appended and not yet taken: a caller that takes every complete message after each append
/// keeps it below one message and its 2-byte prefix (65537 bytes).
public struct DNSStreamDecoder: Sendable {
    private var buffer: [UInt8] = []
    /// Bytes before this index were returned already.
    private var consumed = 0

    public init() {}

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        if consumed > 0 {
            buffer.removeSubrange(0..<consumed)
            consumed = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next whole message, nil until one is complete. Throws for a length below 12 (no message
    /// can be that short: the connection is garbage and must be closed), and keeps throwing.
    public mutating func nextMessage() throws(DNSWireError) -> [UInt8]? {
        let available = buffer.count - consumed
        guard available >= 2 else { return nil }
        let length = Int(buffer[consumed]) << 8 | Int(buffer[consumed + 1])
        if length < 12 { throw .badStreamLength(length: length) }
        guard available - 2 >= length else { return nil }
        let start = consumed + 2
        let message = Array(buffer[start..<(start + length)])
        consumed = start + length
        if consumed == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            consumed = 0
        }
        return message
    }

    /// Bytes received but not yet returned (a partial message).
    public var bufferedByteCount: Int { buffer.count - consumed }
}
