"""`python -m instructsift.cli`: the `instructsift` command."""

from . import main

if __name__ == "__main__":
    main()
