import CNetfilter
import Glibc
@testable import Netfilter
import Testing

@Suite struct KernelErrorTests {
    static let newRule = UInt16(NFT_MSG_NEWRULE.rawValue)
    static let newTable = UInt16(NFT_MSG_NEWTABLE.rawValue)

    @Test func aRefusedRuleIsNamedWithTheKernelsReason() {
        let error = KernelError.classify([
            .init(object: "rule 3 of chain istio-output in table inet istio-proxy-nat", errno: EOPNOTSUPP, messageType: Self.newRule),
        ], operation: "program nftables")
        #expect(error.description
                == "kernel refused rule 3 of chain istio-output in table inet istio-proxy-nat: Operation not supported; nothing was changed")
        #expect(error.exitCode == 1)
    }

    @Test func furtherRefusalsAreSummarised() {
        let refusals = (1...5).map {
            KernelError.Refusal(object: "rule \($0) of chain c in table inet t", errno: ENOENT, messageType: Self.newRule)
        }
        let text = KernelError.classify(refusals, operation: "program nftables").description
        #expect(text.hasPrefix("kernel refused rule 1 of chain c in table inet t: No such file or directory (also refused: rule 2"))
        #expect(text.contains("; and 2 more)"))
    }

    @Test func missingCapabilityIsAConfigurationError() {
        for code in [EPERM, EACCES] {
            let error = KernelError.classify([
                .init(object: "the nftables batch", errno: code, messageType: UInt16(NFNL_MSG_BATCH_BEGIN)),
            ], operation: "program nftables")
            #expect(error == .permissionDenied(operation: "program nftables"))
            #expect(error.exitCode == 2)
            #expect(error.description.contains("CAP_NET_ADMIN"))
            #expect(error.description.contains("NET_ADMIN and NET_RAW"))
            #expect(error.description.contains("securityContext.capabilities.add"))
        }
    }

    @Test func missingNftablesIsRecognised() {
        let batch = KernelError.classify([
            .init(object: "the nftables batch", errno: EOPNOTSUPP, messageType: UInt16(NFNL_MSG_BATCH_BEGIN)),
        ], operation: "program nftables")
        let table = KernelError.classify([
            .init(object: "table inet istio-proxy-nat", errno: ENOENT, messageType: Self.newTable),
            .init(object: "removal of table inet istio-proxy-nat", errno: ENOENT, messageType: UInt16(NFT_MSG_DELTABLE.rawValue)),
        ], operation: "program nftables")
        for error in [batch, table] {
            guard case .nftablesUnavailable = error else {
                Issue.record("expected nftablesUnavailable, got \(error)")
                continue
            }
            #expect(error.description.contains("the kernel lacks nf_tables"))
            #expect(error.description.contains("modprobe nf_tables"))
            #expect(error.exitCode == 1)
        }
    }
}
