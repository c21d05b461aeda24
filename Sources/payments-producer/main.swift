import UndercurrentCLI
PaymentsProducer.main()
