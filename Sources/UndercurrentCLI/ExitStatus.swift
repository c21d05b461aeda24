import ArgumentParser
import Checkpoints
import Config
import Foundation
import Simulation
import Streams

/// What the executables' exit statuses mean: the same five for every command (README, "Exit statuses").
public enum ExitStatus {
    /// For `--help` (each executable's discussion).
    public static let help = """
        Exit status: 0 done (a service: stopped by SIGINT/SIGTERM after a clean shutdown); 1 failed after a good start \
        (events not delivered, problems found, goals not met, an error it could not hold through); 2 could not start \
        (a bad flag, option, config file or path, rejected credentials, an unusable checkpoint); 3 finished, but an \
        objective was missed (loadtest --slo); 130 interrupted before finishing (SIGINT/SIGTERM), work so far flushed.
        """

    /// Runs a command as `ParsableCommand.main()` does, except that a usage error (a bad flag or option, which
    /// ArgumentParser gives status 64) exits with 2, like the other failures to start.
    public static func main<Command: ParsableCommand>(_ type: Command.Type) -> Never {
        var parsed = false
        do {
            var command = try Command.parseAsRoot()
            parsed = true
            try command.run()
            exit(0)
        } catch let error as ValidationError where parsed {
            // Found by a command's own checks once its flags parsed (no cluster address, a missing state
            // directory): one line. The usage below it was the root command's, and beside the point.
            cannotStart(Command.self, error.message)
        } catch let error as StartError {
            cannotStart(Command.self, error.description)
        } catch let error as StreamSetupError {
            cannotStart(Command.self, error.description)
        } catch let error as ConfigFileError {
            cannotStart(Command.self, error.description)
        } catch let error as ConfigError {
            cannotStart(Command.self, error.description)
        } catch let error as NSError where error.domain == NSCocoaErrorDomain || error.domain == NSPOSIXErrorDomain {
            // A file error nothing caught: its reason in words, never Foundation's dump.
            Console.error(Command.configuration.commandName ?? "undercurrent", ErrorWords.describe(error))
            exit(1)
        } catch {
            if Command.exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((Command.fullMessage(for: error) + "\n").utf8))
                exit(2)
            }
            // (Help asked for comes here too, as a success; an `ExitCode` is a status already said.)
            if parsed && !(error is ExitCode) && Command.exitCode(for: error) == .failure {
                // Any other failure of a command under way: the product's own line (it came as ArgumentParser's
                // bare `Error: …`), status 1.
                Console.error(Command.configuration.commandName ?? "undercurrent", "\(error)")
                exit(1)
            }
            Command.exit(withError: error)
        }
    }

    /// A configuration problem found after parsing (a config file's value): one line, status 2.
    static func cannotStart<Command: ParsableCommand>(_ type: Command.Type, _ message: String) -> Never {
        Console.error(Command.configuration.commandName ?? "undercurrent", message)
        exit(2)
    }
}
