import Foundation

/// A network namespace joined to this host by a veth pair, so that a test can make a server
/// vanish from the network without a word: after `dropReplies()` nothing it sends reaches this
/// host, not even a reset, as when its machine dies or a firewall starts dropping packets.
/// Needs root (CAP_NET_ADMIN) and `ip`; `isSupported` tells.
public final class NetworkNamespace: Sendable {
    public let name: String
    /// This host's end of the link.
    public let clientAddress: String
    /// The namespace's end, where its server listens.
    public let serverAddress: String
    private let hostInterface: String

    public init() async throws {
        let tag = String(UInt32.random(in: 0...0xFF_FFFF), radix: 16)
        name = "godwit-\(tag)"
        hostInterface = "gwh\(tag)"
        let peer = "gwn\(tag)"
        // A /30 of 10.213.0.0/16 of its own, so that namespaces of concurrent runs never collide.
        let block = Int.random(in: 0..<16_384) * 4
        let prefix = "10.213.\(block / 256)"
        clientAddress = "\(prefix).\(block % 256 + 1)"
        serverAddress = "\(prefix).\(block % 256 + 2)"
        let inside = ["ip", "netns", "exec", name]
        do {
            for command in [
                ["ip", "netns", "add", name],
                ["ip", "link", "add", hostInterface, "type", "veth", "peer", "name", peer],
                ["ip", "link", "set", peer, "netns", name],
                ["ip", "addr", "add", "\(clientAddress)/30", "dev", hostInterface],
                ["ip", "link", "set", hostInterface, "up"],
                inside + ["ip", "addr", "add", "\(serverAddress)/30", "dev", peer],
                inside + ["ip", "link", "set", peer, "up"],
                inside + ["ip", "link", "set", "lo", "up"],
            ] {
                try await PrivateCluster.shell(command)
            }
        } catch {
            await destroy()
            throw error
        }
    }

    /// From now on the namespace's replies are dropped: packets still arrive there, but no
    /// acknowledgement, result or reset comes back.
    public func dropReplies() async throws {
        try await PrivateCluster.shell(
            ["ip", "netns", "exec", name, "ip", "route", "add", "blackhole", "\(clientAddress)/32"])
    }

    /// Removes the namespace and its link; stop what runs inside first.
    public func destroy() async {
        _ = try? await PrivateCluster.shell(["ip", "link", "del", hostInterface])
        _ = try? await PrivateCluster.shell(["ip", "netns", "del", name])
    }

    /// Whether this machine lets the tests make namespaces (root with CAP_NET_ADMIN, `ip`).
    public static let isSupported: Bool = {
        guard getuid() == 0 else { return false }
        let probe = "godwit-probe-\(getpid())"
        for command in [["ip", "netns", "add", probe], ["ip", "netns", "del", probe]] {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = command
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            guard (try? process.run()) != nil else { return false }
            process.waitUntilExit()
            if process.terminationStatus != 0 { return false }
        }
        return true
    }()
}
