import DataPlane
import Glibc

// Before any thread exists, so only the proxy's signal thread ever receives them.
SluiceProxyCommand.blockHandledSignals()
exit(await SluiceProxyCommand.run(arguments: Array(CommandLine.arguments.dropFirst())))
