import UndercurrentCLI
EngagementProducer.main()
