from pfx.cli import main

main()
