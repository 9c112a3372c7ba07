"""The fleet simulation: ``python -m bench.fleet`` (the same as ``secretswitch simulate``).

Runs the client's real refresh policy for a fleet of instances (10,000 by
default) against a simulated year of Secrets Manager rotations on a virtual
clock; see :mod:`secretswitch.simulate` for the model and the options.
"""

from __future__ import annotations

import sys

from secretswitch.simulate import main

if __name__ == "__main__":
    sys.exit(main())
