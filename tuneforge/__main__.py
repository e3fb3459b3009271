from tuneforge.cli.main import main

main()
