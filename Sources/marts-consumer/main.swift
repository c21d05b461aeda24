import UndercurrentCLI
ExitStatus.main(MartsConsumerCommand.self)
