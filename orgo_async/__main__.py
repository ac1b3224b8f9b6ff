"""``python -m orgo_async``: the ``orgo-async`` command line."""

from .cli import main

raise SystemExit(main())
