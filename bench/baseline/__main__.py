"""``python -m bench.baseline``: run the tutorial client over a folder (see the package)."""

from __future__ import annotations

from bench.baseline.client import main

raise SystemExit(main())
