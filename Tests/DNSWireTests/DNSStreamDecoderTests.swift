import DNSWire
import Testing

@Suite struct DNSStreamDecoderTests {
    @Test func bytesArrivingOneAtATime() throws {
        let stream = DNSTCPFraming.frame(digQueryExampleComA) + DNSTCPFraming.frame(cnameChainResponse)
        var decoder = DNSStreamDecoder()
        var messages: [[UInt8]] = []
        for (index, byte) in stream.enumerated() {
            decoder.append([byte])
            while let message = try decoder.nextMessage() { messages.append(message) }
            // Complete exactly when the last byte of each frame has arrived, not a byte earlier.
            let expectedCount = index + 1 >= stream.count ? 2 : (index + 1 >= 54 ? 1 : 0)
            #expect(messages.count == expectedCount, "after \(index + 1) bytes")
        }
        #expect(messages == [digQueryExampleComA, cnameChainResponse])
        #expect(decoder.bufferedByteCount == 0)
        #expect(try decoder.nextMessage() == nil)
    }

    @Test func severalMessagesInOneChunkAndAPartialTail() throws {
        let third = everyKindMessage().encode()
        let framed = DNSTCPFraming.frame(cnameChainResponse) + DNSTCPFraming.frame(digQueryExampleComA) + DNSTCPFraming.frame(third)
        var decoder = DNSStreamDecoder()
        decoder.append(framed.dropLast(10))
        #expect(try decoder.nextMessage() == cnameChainResponse)
        #expect(try decoder.nextMessage() == digQueryExampleComA)
        #expect(try decoder.nextMessage() == nil)
        #expect(decoder.bufferedByteCount == third.count + 2 - 10)
        decoder.append(framed.suffix(10))
        #expect(try decoder.nextMessage() == third)
        #expect(try decoder.nextMessage() == nil)
        #expect(decoder.bufferedByteCount == 0)
    }

    @Test func randomChunkSizes() throws {
        var random = SplitMix64(state: 99)
        let messages = [digQueryExampleComA, cnameChainResponse, everyKindMessage().encode()]
        var stream: [UInt8] = []
        var sent: [[UInt8]] = []
        for index in 0..<60 {
            sent.append(messages[index % 3])
            stream += DNSTCPFraming.frame(messages[index % 3])
        }
        var decoder = DNSStreamDecoder()
        var received: [[UInt8]] = []
        var offset = 0
        while offset < stream.count {
            let chunk = min(stream.count - offset, 1 + random.below(300))
            decoder.append(stream[offset..<(offset + chunk)])
            offset += chunk
            while let message = try decoder.nextMessage() { received.append(message) }
            #expect(decoder.bufferedByteCount < 2 + 65535)
        }
        #expect(received == sent)
    }

    @Test(arguments: [0, 1, 11])
    func aLengthBelow12IsGarbage(_ length: Int) {
        var decoder = DNSStreamDecoder()
        decoder.append(uint16(length) + Array(repeating: 0, count: 20))
        #expect(throws: DNSWireError.badStreamLength(length: length)) { try decoder.nextMessage() }
        // It stays garbage: the caller closes the connection.
        #expect(throws: DNSWireError.badStreamLength(length: length)) { try decoder.nextMessage() }
    }

    @Test func garbageAfterAGoodMessage() throws {
        var decoder = DNSStreamDecoder()
        decoder.append(DNSTCPFraming.frame(digQueryExampleComA) + [0x00, 0x05, 1, 2, 3, 4, 5])
        #expect(try decoder.nextMessage() == digQueryExampleComA)
        #expect(throws: DNSWireError.badStreamLength(length: 5)) { try decoder.nextMessage() }
    }

    @Test func aLengthPrefixAloneWaits() throws {
        var decoder = DNSStreamDecoder()
        decoder.append([0xFF])
        #expect(try decoder.nextMessage() == nil)
        decoder.append([0xFF])
        #expect(try decoder.nextMessage() == nil)
        #expect(decoder.bufferedByteCount == 2)
        decoder.append(Array(repeating: 0, count: 65534))
        #expect(try decoder.nextMessage() == nil)
        decoder.append([0])
        #expect(try decoder.nextMessage()?.count == 65535)
    }
}
