"""Run one fuzz target under atheris: `python -m bench.fuzz TARGET [libFuzzer args...]`.

The target module is imported inside `atheris.instrument_imports`, so the adapter's code (and
pypdf's, for the PDF check) reports coverage to libFuzzer; everything after TARGET goes to
libFuzzer as it is (options such as -runs=N, -max_total_time=S, -rss_limit_mb=M, then corpus
directories). `bench/fuzz.sh` is the usual way in. FUZZ_INSTRUMENT (comma-separated package
names) overrides what is instrumented: `FUZZ_INSTRUMENT=adapter` runs the PDF check about four
times faster, guided by the adapter's code only.
"""

from __future__ import annotations

import importlib
import os
import sys

from bench.fuzz import DEFAULT_INSTRUMENTED, INSTRUMENTED, TARGETS


def main(argv: list[str]) -> None:
    if len(argv) < 2 or argv[1] not in TARGETS:
        sys.exit(f"usage: python -m bench.fuzz {{{'|'.join(TARGETS)}}} [libFuzzer args...]")
    try:
        import atheris
    except ImportError:
        sys.exit("atheris is missing: pip install -e '.[fuzz]'")
    target = argv[1]
    chosen = os.environ.get("FUZZ_INSTRUMENT")
    packages = chosen.split(",") if chosen else INSTRUMENTED.get(target, DEFAULT_INSTRUMENTED)
    with atheris.instrument_imports(include=list(packages)):
        module = importlib.import_module(f"bench.fuzz.{target}")
    atheris.Setup([f"{argv[0]} {target}", *argv[2:]], module.fuzz_one)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
