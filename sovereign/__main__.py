from sovereign.cli.main import main

main()
