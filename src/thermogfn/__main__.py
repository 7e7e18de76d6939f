from thermogfn.cli import main

main()
