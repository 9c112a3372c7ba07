"""``python -m secretswitch.demo_app``: the end-to-end demo (same as ``secretswitch demo``)."""

from __future__ import annotations

import sys

from .main import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
