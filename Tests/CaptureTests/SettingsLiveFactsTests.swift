import Capture
import SluiceInit
import Testing

/// The live facts against this machine: needs no root and changes nothing.
@Suite("Settings: live system facts")
struct SettingsLiveFactsTests {
    let facts = LiveSystemFacts()

    @Test func usersAndGroupsComeFromNSS() {
        #expect(facts.userID(named: "root") == 0)
        #expect(facts.groupID(named: "root") == 0)
        #expect(facts.userID(named: "no-such-user-sluice") == nil)
        #expect(facts.groupID(named: "no-such-group-sluice") == nil)
        #expect(facts.userID(named: "") == nil)
    }

    @Test func resolvConfIsReadOrNil() {
        #expect(facts.resolvConf(at: "/proc/self/nonexistent-sluice") == nil)
        #expect(facts.resolvConf(at: "/") == nil, "a directory cannot be read")
        #expect(facts.resolvConf(at: "/proc/self/status")?.contains("Pid:") == true)
    }

    @Test func addressesExcludeLoopback() {
        let loopback = facts.interfaceAddresses().filter(\.isLoopback)
        #expect(loopback.isEmpty)
    }
}
