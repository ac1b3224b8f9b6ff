"""Fleet launch latency: the SDK against a hand-written raw-aiohttp loop, same run.

    python benchmarks/fleet_latency.py --count 200 --concurrency 32 --boot-ms 300
    python benchmarks/fleet_latency.py --sweep 16,32,64,128,256 --count 200,200,200,400,600

This is ``orgo-async bench`` (the logic lives in ``orgo_async.cli.bench``) with
two different defaults:

* the emulator is started in a child process unless ``--base-url`` names a
  target (then ``ORGO_API_KEY`` is the key);
* the JSON is written to ``--out``, by default
  ``benchmarks/results/fleet_latency.json``; the table goes to stdout
  (``--json`` prints the JSON instead).

Every other option is ``orgo-async bench``'s: ``--help`` lists them. The exit
status is the command's (0 ok, 2 usage, 7 failed launches or leftovers, ...).
See ``benchmarks/README.md`` for what each figure means.
"""

from __future__ import annotations

import sys
from pathlib import Path

from orgo_async.cli import main as cli_main

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "fleet_latency.json"


def _given(args: list[str], option: str) -> bool:
    return any(a == option or a.startswith(option + "=") for a in args)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not _given(args, "--base-url") and "--emulator" not in args:
        args.insert(0, "--emulator")
    if not _given(args, "--out"):
        args += ["--out", str(DEFAULT_OUT)]
    return cli_main(["bench", *args])


if __name__ == "__main__":
    sys.exit(main())
