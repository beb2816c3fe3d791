from edgeir.cli import main

main()
