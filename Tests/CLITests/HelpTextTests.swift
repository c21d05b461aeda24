import ArgumentParser
import Testing
import UndercurrentCLI

/// `--help` texts read as paragraphs: ArgumentParser wraps each line of a discussion on its own, so a line
/// broken in the middle of a sentence in the source shows as a ragged short line.
@Suite struct HelpTextTests {
    static func all(_ command: any ParsableCommand.Type) -> [any ParsableCommand.Type] {
        [command] + command.configuration.subcommands.flatMap { all($0) }
    }

    @Test func everyDiscussionBreaksLinesOnlyBetweenSentences() {
        let commands = Self.all(Undercurrent.self) + [MartsConsumerCommand.self]
        #expect(commands.count > 14)
        for command in commands {
            let lines = command.configuration.discussion.split(separator: "\n", omittingEmptySubsequences: false)
            for (line, next) in zip(lines, lines.dropFirst()) where !line.isEmpty && !next.isEmpty {
                #expect(line.hasSuffix(".") || line.hasSuffix(":"),
                        "\(command.configuration.commandName ?? "?"): a line break inside a sentence after \"\(line.suffix(40))\"")
            }
        }
    }
}
