"""Reliability figures for mi-notebook: the fault matrix, bad-input fuzzing, token leaks, load.

Runs the same scenarios as the reliability tests (``tests/test_reliability_*.py``,
``tests/test_fuzz_*.py``, ``tests/test_secrets*.py``, ``tests/test_load*.py`` import them from the
package ``bench.reliability``) outside pytest, against the embedded emulator on loopback, in virtual
time, and prints the figures as a Markdown table (the content of ``docs/reliability.md``)::

    python bench/reliability_report.py                 # everything, ~20 s
    python bench/reliability_report.py --update        # ... and rewrite the figures in docs/reliability.md
    python bench/reliability_report.py --examples 50   # fewer fuzz examples per property
    python -m bench.reliability --examples 50          # the same

Sections:

- the fault matrix (:mod:`.faults`): every fault the emulator can inject, on the first attempt only
  and on every attempt, at the token endpoint (through ``Connection.get_token``), instance metadata
  (``ImdsClient.get_json``) and ARM (``ArmClient.get``): retried or not as documented, virtual time
  within the policy's bound, the right error type with status and description, nothing else raised;
- bad input (:mod:`.fuzz`, :mod:`.arm_garbage`): hypothesis properties over the public entry points
  (only ``ValueError`` / ``ManagedIdentityError``), and garbage requests to the emulator's ARM side;
- secrets (:mod:`.leaks`): every repr / str / HTML / log record / error / CLI output / chart text of
  a full run, scanned for each issued token and every 40-character piece of it;
- load (:mod:`.load`): 64 threads x 1,000 ``get_token`` calls with intermittent 429 / 500, and the
  emulator under 200 concurrent connections with its throttling on.

Example (where ``--update`` puts the figures)::

    >>> START_MARKER in (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    True
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench.reliability.faults import FAULT_CASES, CaseResult, FaultCase, run_fault_matrix
from bench.reliability.fuzz import run_fuzz
from bench.reliability.leaks import LEAK_WINDOW, collect_secret_surfaces
from bench.reliability.load import StormResult, run_emulator_storm, run_token_load

ROOT = Path(__file__).resolve().parents[2]


def build_report(examples: int = 200, threads: int = 64, calls: int = 1000, *,
                 cases: Iterable[FaultCase] = FAULT_CASES, connections: int = 200, latency: float = 2.0) -> str:
    """Run everything; the Markdown text of docs/reliability.md's figures.

    ``examples``: hypothesis inputs per property; ``threads`` x ``calls``: the token load; ``cases``:
    the fault cases; ``connections``: the size of each emulator storm, one of them with ``latency``
    seconds added to each answer. The text holds ``{non_loopback}`` for :func:`main` to fill in.

    Example (a small run)::

        >>> from bench.reliability.faults import case_by_id
        >>> text = build_report(2, 2, 20, cases=[case_by_id("arm:404")], connections=6, latency=0.2)
        >>> print(text.split("\\n### The fault matrix")[0])  # doctest: +ELLIPSIS
        | figure | value |
        |---|---|
        | fault cases passed | 2 / 2 (1 fault cases x first attempt only / every attempt, ...) |
        | bad inputs tried (hypothesis) | 16 over 8 entry points, 0 unexpected exception types |
        | tokens leaked | 0 (... tokens, ... characters over ... texts in ... surfaces, every 40-char piece searched) |
        | IMDS requests per key per refresh, under load | ... |
        | errors surfaced to callers under load | 0 of 40 calls (2 threads x 20; ...) |
        | packets to anything but loopback | {non_loopback} (the test suite's guard, installed) |
        | emulator, 6 concurrent token requests, throttling on | ... x 200...; 0 unanswered; serving after: yes |
        | emulator, 6 concurrent instance-metadata requests, throttling on | 5 x 200, 1 x 429; 0 unanswered |
        | emulator, 6 concurrent token requests, throttling on, 0.2 s latency | ... x 200...; 0 unanswered |
        | emulator, 6 concurrent token requests, throttling off | 6 x 200; 0 unanswered |
        <BLANKLINE>
    """
    started = time.monotonic()
    lines: list[str] = []
    cases = list(cases)
    results = run_fault_matrix(cases)
    by_endpoint: dict[str, list[CaseResult]] = defaultdict(list)
    for r in results:
        by_endpoint[r.case.endpoint].append(r)
    fuzz = run_fuzz(examples)
    secrets = collect_secret_surfaces()
    leaks = secrets.leaks()
    load = run_token_load(threads, calls)
    storm_token = run_emulator_storm(connections, path="token", throttle=True)
    storm_slow = run_emulator_storm(connections, path="token", throttle=True, latency=latency)
    storm_instance = run_emulator_storm(connections, path="instance", throttle=True)
    storm_open = run_emulator_storm(connections, path="token", throttle=False)

    passed = sum(r.passed for r in results)
    known = [r for r in results if r.case.known_bug and not r.passed]
    lines += ["| figure | value |", "|---|---|"]
    bugs = f"; {len(known)} known bug{'s' if len(known) != 1 else ''}, xfail" if known else ""
    lines.append(f"| fault cases passed | {passed} / {len(results)} ({len(cases)} fault cases x first attempt "
                 f"only / every attempt, at the token endpoint, instance metadata and ARM{bugs}) |")
    lines.append(f"| bad inputs tried (hypothesis) | {sum(fuzz.values()):,} over {len(fuzz)} entry points, "
                 "0 unexpected exception types |")
    lines.append(f"| tokens leaked | {len(leaks)} ({len(secrets.tokens)} tokens, "
                 f"{secrets.scanned_chars:,} characters over {sum(map(len, secrets.texts.values())):,} texts "
                 f"in {len(secrets.texts)} surfaces, every {LEAK_WINDOW}-char piece searched) |")
    lines.append(f"| IMDS requests per key per refresh, under load | {load.requests_per_refresh:.2f} "
                 f"({sum(load.answers_200.values())} token answers for {sum(load.refreshes.values())} refreshes "
                 f"of {load.keys} keys, {load.lifetime} s tokens, {load.virtual_seconds:,.0f} s of virtual time) |")
    lines.append(f"| errors surfaced to callers under load | {len(load.errors)} of {load.threads * load.calls:,} "
                 f"calls ({load.threads} threads x {load.calls:,}; {load.failed_answers} injected 429/500 "
                 f"answers absorbed; {load.seconds:.1f} s; {load.alive} threads stuck) |")
    lines.append("| packets to anything but loopback | {non_loopback} (the test suite's guard, installed) |")
    for what, storm in (("token requests, throttling on", storm_token),
                        ("instance-metadata requests, throttling on", storm_instance),
                        (f"token requests, throttling on, {latency:g} s latency", storm_slow),
                        ("token requests, throttling off", storm_open)):
        after = f"; serving after: {'yes' if storm.serving_after else 'NO'}" if storm is storm_token else ""
        lines.append(f"| emulator, {storm.connections} concurrent {what} | "
                     f"{_statuses(storm)}; {storm.unanswered} unanswered{after} |")
    lines += ["", "### The fault matrix", "",
              "| endpoint | fault | retried | error when every attempt fails | first attempt only | every attempt |",
              "|---|---|---|---|---|---|"]
    for endpoint in ("token", "instance", "arm"):
        rows = by_endpoint[endpoint]
        for first, every in zip(rows[0::2], rows[1::2], strict=True):
            c = first.case
            status = f" ({c.status})" if c.status is not None else ""
            lines.append(f"| {endpoint} | {c.name} | {'yes' if c.retried else 'no'} | {c.error.__name__}{status} | "
                         f"{_cell(first)} | {_cell(every)} |")
    if known:
        lines += ["", "Known bugs (tests marked `xfail(strict=True)`):", ""]
        for reason in sorted({r.case.known_bug for r in known if r.case.known_bug}):
            lines.append(f"- {reason}")
    lines += ["", "### Bad input", "", "| entry point | inputs tried |", "|---|---|"]
    lines += [f"| {name} | {n:,} |" for name, n in fuzz.items()]
    lines += ["", f"_Generated by `python bench/reliability_report.py` in {time.monotonic() - started:.0f} s "
              f"(Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)._"]
    return "\n".join(lines)


def _statuses(storm: StormResult) -> str:
    return ", ".join(f"{n} x {status}" for status, n in sorted(storm.statuses.items()))


def _cell(r: CaseResult) -> str:
    mark = "pass" if r.passed else ("xfail" if r.case.known_bug else "**FAIL**")
    shown = ", ".join("-" if s is None else str(s) for s in r.statuses)
    return f"{mark}: {shown}; {r.total:.1f} s <= {r.bound:.1f} s"


START_MARKER = "<!-- reliability figures: generated by bench/reliability_report.py, do not edit -->"
END_MARKER = "<!-- end of generated figures -->"


def update_document(path: Path, report: str) -> None:
    """Replace the text between the two markers in ``path`` with ``report``.

    Example::

        >>> import tempfile
        >>> doc = Path(tempfile.mkdtemp()) / "figures.md"
        >>> _ = doc.write_text(f"# Figures\\n{START_MARKER}\\nold\\n{END_MARKER}\\nthe end\\n")
        >>> update_document(doc, "| figure | value |")
        >>> doc.read_text().splitlines()[2:4]
        ['| figure | value |', '<!-- end of generated figures -->']
    """
    text = path.read_text(encoding="utf-8")
    head, found, rest = text.partition(START_MARKER)
    _, found_end, tail = rest.partition(END_MARKER)
    if not (found and found_end):
        raise SystemExit(f"{path} lacks the markers {START_MARKER!r} ... {END_MARKER!r}")
    path.write_text(f"{head}{START_MARKER}\n{report}\n{END_MARKER}{tail}", encoding="utf-8")


def install_loopback_guard() -> Any:
    """The test suite's guard (tests/_guard): any non-loopback connection or name lookup is refused.

    Installing it again does nothing. Its ``violations`` list every refused attempt.

    Example::

        >>> guard = install_loopback_guard()
        >>> guard.is_loopback_host("127.0.0.1"), guard.is_loopback_host("169.254.169.254")
        (True, False)
    """
    guard_dir = str(ROOT / "tests" / "_guard")
    if guard_dir not in sys.path:
        sys.path.insert(0, guard_dir)
    import loopback_guard

    loopback_guard.install()
    return loopback_guard


def main(argv: list[str] | None = None) -> int:
    """The command line: run the report with the loopback guard on, print it, update the documents.

    Exit code 1 if anything tried to reach a non-loopback address.

    Example::

        >>> main(["--help"])  # the usage, then argparse's exit
        Traceback (most recent call last):
        SystemExit: 0
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=200, help="hypothesis examples per property")
    parser.add_argument("--threads", type=int, default=64)
    parser.add_argument("--calls", type=int, default=1000, help="get_token calls per thread")
    parser.add_argument("--update", metavar="FILE", nargs="?", const="",
                        help="also replace the figures between the markers in FILE "
                             "(default: docs/reliability.md; the README links it)")
    ns = parser.parse_args(argv)
    os.environ.setdefault("MI_NOTEBOOK_MODE", "emulator")  # nothing may probe 169.254.169.254
    guard = install_loopback_guard()
    report = build_report(ns.examples, ns.threads, ns.calls).replace("{non_loopback}", str(len(guard.violations)))
    print(report)
    if ns.update is not None:
        for path in [Path(ns.update)] if ns.update else [ROOT / "docs" / "reliability.md"]:
            update_document(path, report)
    for violation in guard.violations:
        print(f"non-loopback traffic attempted: {violation}", file=sys.stderr)
    return 1 if guard.violations else 0
