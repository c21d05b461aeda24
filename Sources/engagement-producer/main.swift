import UndercurrentCLI
ExitStatus.main(EngagementProducer.self)
