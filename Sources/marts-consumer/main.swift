import UndercurrentCLI
MartsConsumerCommand.main()
