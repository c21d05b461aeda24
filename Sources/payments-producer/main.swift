import UndercurrentCLI
ExitStatus.main(PaymentsProducer.self)
