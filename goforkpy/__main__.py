"""``python -m goforkpy doctor [script [args...]]``: what this machine and a program give
goforkpy (see ``_doctor``)."""

import sys

from ._doctor import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
