"""``python -m ocrwatch``: the same as the ``ocrwatch`` console script."""

from __future__ import annotations

from ocrwatch.cli import main

raise SystemExit(main())
