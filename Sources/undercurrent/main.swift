import UndercurrentCLI
ExitStatus.main(Undercurrent.self)
