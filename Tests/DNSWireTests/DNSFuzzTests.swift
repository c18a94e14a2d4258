import DNSWire
import Testing

/// Mutated and random packets, deterministic from a fixed seed: whatever the bytes, `decode` either
/// throws a DNSWireError or returns a message that re-encodes to bytes decoding to the same message.
/// Crashes, traps and hangs fail the run itself.
@Suite struct DNSFuzzTests {
    static func seeds() -> [[UInt8]] {
        var truncationSeed = DNSMessage(
            header: DNSHeader(id: 77), questions: [DNSQuestion(name: name("svc.ns.svc.cluster.local"), type: .aaaa)])
        truncationSeed.answers = (0..<6).map {
            DNSResourceRecord(
                name: name("svc.ns.svc.cluster.local"), type: .aaaa, ttl: 30,
                data: .address([0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, UInt8($0)]))
        }
        truncationSeed.authorities = [
            DNSResourceRecord(
                name: name("cluster.local"), type: .soa, ttl: 30,
                data: .startOfAuthority(primary: name("ns.dns.cluster.local"), mailbox: name("hostmaster.cluster.local"),
                                        serial: 1, refresh: 2, retry: 3, expire: 4, minimum: 5))
        ]
        truncationSeed.edns = EDNS(udpPayloadSize: 512)
        return [digQueryExampleComA, cnameChainResponse, everyKindMessage().encode(), truncationSeed.encode()]
    }

    private static func mutate(_ original: [UInt8], _ random: inout SplitMix64) -> [UInt8] {
        var bytes = original
        for _ in 0...random.below(3) {
            let position = bytes.isEmpty ? 0 : random.below(bytes.count)
            switch random.below(9) {
            case 0 where !bytes.isEmpty:
                bytes[position] ^= 1 << UInt8(random.below(8))
            case 1 where !bytes.isEmpty:
                bytes[position] = random.byte()
            case 2:
                bytes = Array(bytes.prefix(random.below(bytes.count + 1)))
            case 3:
                bytes.insert(contentsOf: (0..<(1 + random.below(8))).map { _ in random.byte() }, at: position)
            case 4 where !bytes.isEmpty:
                bytes.removeSubrange(position..<min(bytes.count, position + 1 + random.below(16)))
            case 5 where bytes.count >= 12:
                // A count field: small lies are the interesting ones, huge ones must fail fast.
                let field = 4 + 2 * random.below(4)
                let value = random.below(4) == 0 ? random.below(65536) : random.below(8)
                bytes[field] = UInt8(value >> 8)
                bytes[field + 1] = UInt8(value & 0xFF)
            case 6 where bytes.count >= 2:
                // A compression pointer to anywhere, overwriting two bytes.
                let at = random.below(bytes.count - 1)
                let target = random.below(min(bytes.count + 8, 0x3FFF))
                bytes[at] = 0xC0 | UInt8(target >> 8)
                bytes[at + 1] = UInt8(target & 0xFF)
            case 7 where !bytes.isEmpty:
                // A slice copied over another place: names and records land where they do not belong.
                let length = 1 + random.below(min(24, bytes.count))
                let from = random.below(bytes.count - length + 1)
                let slice = Array(bytes[from..<(from + length)])
                bytes.insert(contentsOf: slice, at: random.below(bytes.count + 1))
            default:
                // A label length byte from the interesting range (0, 63, 64, 0x80, 0xC0...).
                if !bytes.isEmpty { bytes[position] = [0, 1, 63, 64, 0x7F, 0x80, 0xBF, 0xC0, 0xFF][random.below(9)] }
            }
        }
        return bytes
    }

    @Test func mutatedAndRandomPacketsDecodeToRoundTrippingMessagesOrThrow() throws {
        var random = SplitMix64(state: 0xD15E_A5E5)
        let seeds = Self.seeds()
        for seed in seeds { _ = try DNSMessage.decode(seed) }

        var accepted = 0, refused = 0, failures = 0
        var refusalKinds = Set<String>()
        func check(_ bytes: [UInt8]) {
            let message: DNSMessage
            do {
                message = try DNSMessage.decode(bytes)
            } catch {
                refused += 1
                refusalKinds.insert(Mirror(reflecting: error).children.first?.label ?? "\(error)")
                return
            }
            accepted += 1
            guard failures < 5 else { return }
            do {
                let again = try DNSMessage.decode(message.encode())
                if again != message {
                    failures += 1
                    Issue.record("re-encoding changed the message decoded from \(bytes)")
                }
                // Truncation too must always produce something decodable.
                if accepted % 4 == 0 {
                    let small = message.encode(maximumSize: 512)
                    _ = try DNSMessage.decode(small)
                }
            } catch {
                failures += 1
                Issue.record("re-encoded message refused (\(error)); original bytes \(bytes)")
            }
        }

        let mutationsPerSeed = 5_000
        for seed in seeds {
            for _ in 0..<mutationsPerSeed { check(Self.mutate(seed, &random)) }
        }
        for _ in 0..<5_000 {
            let length = random.below(601)
            var garbage = (0..<length).map { _ in random.byte() }
            // Half with a believable header, so the body gets read at all.
            if garbage.count >= 12 && random.below(2) == 0 {
                for field in stride(from: 4, to: 12, by: 2) {
                    garbage[field] = 0
                    garbage[field + 1] = UInt8(random.below(4))
                }
            }
            check(garbage)
        }

        #expect(accepted + refused == seeds.count * mutationsPerSeed + 5_000)
        #expect(accepted + refused >= 20_000)
        // Both outcomes must be common, or the mutations are not exercising the decoder.
        #expect(accepted > 2_000, "accepted \(accepted)")
        #expect(refused > 2_000, "refused \(refused)")
        // And the refusals come for many different reasons.
        #expect(refusalKinds.count >= 8, "\(refusalKinds.sorted())")
    }
}
