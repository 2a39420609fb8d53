"""``python -m tend``: the same as the ``tend`` command."""

from tend.cli import main

if __name__ == "__main__":
    main()
