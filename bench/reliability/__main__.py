"""``python -m bench.reliability [--update] [--examples N]``: the reliability report (see :mod:`.report`)."""

from bench.reliability.report import main

if __name__ == "__main__":
    raise SystemExit(main())
