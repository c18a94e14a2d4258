import Agent
import Glibc
import Supervisor

// Before any thread exists: every thread inherits SIGCHLD blocked, so the reaper sees each exit at once.
ChildReaper.blockChildSignal()

var environment: [String: String] = [:]
var entry = environ
while let pointer = entry.pointee {
    let pair = String(cString: pointer)
    if let equals = pair.firstIndex(of: "=") {
        environment[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
    }
    entry += 1
}

let start = PilotAgent.prepare(arguments: Array(CommandLine.arguments.dropFirst()), environment: environment)
exit(await PilotAgent.run(start))
