"""Run every benchmark module: ``python -m bench [name ...]``."""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from pathlib import Path

# Modules that are helpers, not benchmarks.
_SKIP = {"__main__", "_common"}


def _modules() -> list[str]:
    found = [info.name for info in pkgutil.iter_modules([str(Path(__file__).parent)])]
    return sorted(name for name in found if name not in _SKIP and not name.startswith("_"))


_USAGE = "usage: python -m bench [name ...]   (names: {names}; none runs them all)"


def main(argv: list[str] | None = None) -> int:
    names = list(argv if argv is not None else sys.argv[1:]) or _modules()
    if any(name in {"-h", "--help"} for name in names):
        print(_USAGE.format(names=", ".join(_modules())))
        return 0
    unknown = [name for name in names if name not in _modules()]
    if unknown:
        print(f"unknown benchmark {', '.join(unknown)}; " + _USAGE.format(names=", ".join(_modules())), file=sys.stderr)
        return 2
    failed = []
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        run = getattr(module, "main", None)
        if run is None:
            continue
        print(f"\n## bench.{name}\n", flush=True)
        start = time.perf_counter()
        try:
            # Each main() parses its own arguments: give it none.
            saved, sys.argv = sys.argv, [f"bench.{name}"]
            try:
                code = run()
            finally:
                sys.argv = saved
        except Exception as exc:
            print(f"bench.{name} failed: {type(exc).__name__}: {exc}", flush=True)
            code = 1
        print(f"\n(bench.{name}: {time.perf_counter() - start:.1f} s)", flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
