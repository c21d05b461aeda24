import UndercurrentCLI
ExitStatus.main(BillingProducer.self)
