"""``python -m labkit``: the same as the ``labkit`` command (see :mod:`labkit.cli`)."""

from __future__ import annotations

from labkit.cli import main

raise SystemExit(main())
