"""``python -m demo_app``: the end-to-end demo (same as ``secretswitch demo``)."""

from __future__ import annotations

import sys

from secretswitch.cli import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
