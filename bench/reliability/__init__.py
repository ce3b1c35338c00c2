"""The reliability scenarios of mi-notebook, shared by the tests and the report.

One module per job; the tests import them normally (``from bench.reliability import faults``: pytest
puts the repository root on ``sys.path``, see ``pythonpath`` in pyproject.toml):

- :mod:`.faults`: the fault matrix (every injectable fault, at every endpoint, in virtual time);
- :mod:`.fuzz`: bad input at the public entry points (hypothesis strategies and properties);
- :mod:`.arm_garbage`: garbage requests, and bytes that are not TLS, to the emulator's ARM side;
- :mod:`.leaks`: every surface a token could leak through, collected over a full run and scanned;
- :mod:`.load`: many threads asking for tokens through faults, and storms of connections;
- :mod:`.report`: the Markdown figures of docs/reliability.md and the command line
  (``python bench/reliability_report.py`` or ``python -m bench.reliability``);
- :mod:`.records`: reading the emulator's request log (``tests/helpers.py`` re-exports it);
- :mod:`.seams`: every reach into mi_notebook's internals, one function each.

Example::

    >>> from bench.reliability import faults
    >>> len(faults.FAULT_CASES)
    47
"""
