import GodwitCLI

// Every command lives in GodwitCLI; see `Godwit.runAsMain()`.
await Godwit.runAsMain()
