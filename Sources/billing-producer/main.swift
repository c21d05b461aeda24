import UndercurrentCLI
BillingProducer.main()
