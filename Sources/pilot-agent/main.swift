import Agent
import Glibc
import Supervisor

// Before any thread exists: every thread inherits SIGCHLD blocked, so the reaper sees each exit at once.
ChildReaper.blockChildSignal()

let start = PilotAgent.prepare(arguments: Array(CommandLine.arguments.dropFirst()),
                               environment: ProcessLaunch.currentEnvironment())
exit(await PilotAgent.run(start))
