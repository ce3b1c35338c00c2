"""Run the tutorials the way a real Azure VM would see them, and report every error output.

A real VM's notebook finds IMDS at a fixed address (a given URL: ``conn.chosen == "given"``, so
every notebook takes its "real VM" branches) and ARM somewhere else, and a freshly enabled identity
has no role anywhere. This script plays that: it starts ``mi-notebook emulator --config FILE`` in
its own process (IMDS and ARM on loopback), executes each notebook in a fresh kernel with
``MI_NOTEBOOK_IMDS_URL`` / ``MI_NOTEBOOK_ARM_URL`` / ``MI_NOTEBOOK_ARM_CA_BUNDLE`` set to what the
emulator printed (and ``MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN``, its control plane's token), and collects every ``error`` output and every traceback written to a stream.
Nothing else is compared: the outputs differ from the stored (emulator-mode) ones on purpose.

Run it under ``unshare -n`` (``tests/test_notebooks_real_vm.py`` does, as root) so that nothing can
leave the machine whatever a notebook tries; the loopback guard (``tests/_guard``) is active in the
emulator and in every kernel as well, and what it refused is reported too.

    python tests/real_vm_view.py --config no-roles.json --report report.json notebooks/0*.ipynb

Exit code 0 when it ran (whatever the notebooks did: the report says), 2 when the emulator did not
start. The report: ``{"imds_url", "seconds", "guard": [...], "notebooks": {path: {"errors": [...],
"seconds"}}}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GUARD_DIR = ROOT / "tests" / "_guard"
TRACEBACK = "Traceback (most recent call last)"
#: kernels at once: two scenarios of eight notebooks each on a 2-core CI machine
DEFAULT_JOBS = 4
CELL_TIMEOUT = 120
#: the emulator's control-plane token, handed to the kernels (never written to the report)
ADMIN_TOKEN_ENV = "MI_NOTEBOOK_EMULATOR_ADMIN_TOKEN"


def start_emulator(config: Path, env: dict[str, str]) -> tuple[subprocess.Popen[str], dict[str, str], str]:
    """``mi-notebook emulator --config`` (with its ARM side) in its own process; returns it, the URLs
    of its IMDS/ARM/CA lines and its control plane's admin token (its ``export`` line)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "mi_notebook.cli", "emulator", "--config", str(config), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    found: dict[str, str] = {}
    token = ""
    assert proc.stdout is not None
    while not token:  # IMDS, ARM, CA, then export lines, the admin token's last, in one flushed write
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the emulator exited early: {proc.stderr.read() if proc.stderr else ''}")
        if line.startswith("export "):
            name, _, value = shlex.split(line.removeprefix("export "))[0].partition("=")
            token = value if name == ADMIN_TOKEN_ENV else ""
            continue
        key, _, value = line.strip().partition(" ")
        if key not in ("IMDS", "ARM", "CA") or len(found) == 3:
            raise RuntimeError(f"the emulator printed {line.strip()!r} before its IMDS, ARM and CA lines")
        found[key] = value
    if len(found) < 3:
        raise RuntimeError(f"the emulator printed its admin token before its IMDS, ARM and CA lines: {sorted(found)}")
    return proc, found, token


def errors_in(notebook: dict) -> list[str]:
    """Every error output and every traceback written to a stream, as ``cell N: what``."""
    found = []
    for number, cell in enumerate(notebook["cells"]):
        if cell["cell_type"] != "code":
            continue
        for output in cell.get("outputs", []):
            if output["output_type"] == "error":
                found.append(f"cell {number}: {output['ename']}: {output['evalue']}")
            elif output["output_type"] == "stream" and TRACEBACK in "".join(output["text"]):
                text = "".join(output["text"])
                found.append(f"cell {number}: a traceback on {output['name']}: {text[text.index(TRACEBACK):][:600]}")
    return found


def execute(path: Path, env: dict[str, str], workdir: Path) -> dict:
    """Execute one notebook in a fresh kernel of this Python, every cell even after an error."""
    started = time.monotonic()
    out = workdir / path.name
    result = subprocess.run(
        [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute", "--allow-errors",
         "--ExecutePreprocessor.kernel_name=python3", f"--ExecutePreprocessor.timeout={CELL_TIMEOUT}",
         "--output-dir", str(workdir), str(path)],
        env=env, cwd=path.parent, capture_output=True, text=True,
    )
    if result.returncode != 0 or not out.exists():
        problems = [f"nbconvert failed ({result.returncode}): {result.stderr[-2000:]}"]
    else:
        problems = errors_in(json.loads(out.read_text(encoding="utf-8")))
    return {"errors": problems, "seconds": round(time.monotonic() - started, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="the emulator config (JSON)")
    parser.add_argument("--report", type=Path, required=True, help="where to write the JSON report")
    parser.add_argument("--jobs", type=int, default=DEFAULT_JOBS, help="notebooks executed at once")
    parser.add_argument("--keep", type=Path, default=None, help="keep the executed notebooks in this folder")
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)

    started = time.monotonic()
    guard_log = Path(tempfile.mkdtemp(prefix="mi-real-vm-guard-")) / "violations.log"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MI_NOTEBOOK_") and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.pop("MPLBACKEND", None)
    env.update(MI_NOTEBOOK_LOOPBACK_GUARD="1", MI_NOTEBOOK_GUARD_LOG=str(guard_log),
               PYTHONPATH=os.pathsep.join([str(GUARD_DIR), str(ROOT), *filter(None, [env.get("PYTHONPATH")])]))
    try:
        emulator, lines, admin_token = start_emulator(args.config, env)
    except (OSError, RuntimeError) as exc:
        print(f"real_vm_view: {exc}", file=sys.stderr)
        return 2
    kernel_env = {**env, "MI_NOTEBOOK_IMDS_URL": lines["IMDS"], "MI_NOTEBOOK_ARM_URL": lines["ARM"],
                  "MI_NOTEBOOK_ARM_CA_BUNDLE": lines["CA"], ADMIN_TOKEN_ENV: admin_token}
    try:
        with tempfile.TemporaryDirectory(prefix="mi-real-vm-") as scratch, \
                ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            workdir = args.keep or Path(scratch)
            workdir.mkdir(parents=True, exist_ok=True)
            futures = {str(p): pool.submit(execute, p.resolve(), kernel_env, workdir) for p in args.notebooks}
            results = {name: future.result() for name, future in futures.items()}
    finally:
        emulator.terminate()
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.kill()
    report = {
        "imds_url": lines["IMDS"],
        "arm_url": lines["ARM"],
        "seconds": round(time.monotonic() - started, 1),
        "guard": guard_log.read_text(encoding="utf-8").splitlines() if guard_log.exists() else [],
        "notebooks": results,
    }
    args.report.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
