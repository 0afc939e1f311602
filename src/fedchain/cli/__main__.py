from fedchain.cli import main

main()
