import UndercurrentCLI
Undercurrent.main()
