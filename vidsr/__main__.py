from vidsr.cli.main import main

main()
