"""Reliability figures for mi-notebook: the command line of the package ``bench.reliability``.

    python bench/reliability_report.py                 # everything, ~20 s
    python bench/reliability_report.py --update        # ... and rewrite the figures in docs/reliability.md and README.md
    python bench/reliability_report.py --examples 50   # fewer fuzz examples per property

The scenarios live in ``bench/reliability/`` (one module per job; the tests import them from there);
this file only puts the repository on ``sys.path`` so that it runs from anywhere.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

from bench.reliability.report import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
