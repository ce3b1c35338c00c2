"""Read ``abfs://`` CSVs from Azurite with a managed-identity token: pandas, or Dask on a local cluster.

Run by tests/test_data_abfs.py (and bench/bench_dask.py) in a fresh interpreter, because aiohttp (adlfs'
HTTP client) reads its trust store once, when imported: this process trusts Azurite's certificate
authority before anything imports aiohttp. The loopback guard comes from the caller's environment
(``tests/_guard`` on PYTHONPATH, ``MI_NOTEBOOK_LOOPBACK_GUARD=1``), and Dask's worker processes inherit
it. Prints one JSON line: what was read, and by which processes.

    python tests/abfs_reads.py --imds-url URL --account-url URL --ca FILE --container lake [--workers 4 --share]

``--credential``: ``mi`` (mi-notebook's async credential, ``mi.aio.credential()``), or azure-identity's ``ManagedIdentityCredential``
(``azure-identity``: the sync one, ``azure-identity-aio``), pointed at the emulator by the caller's
``AZURE_POD_IDENTITY_AUTHORITY_HOST`` (bench/bench_dask.py compares them). A failed read prints
``{"error": ...}`` and exits 1. With ``--share`` the agent's directory is the default one, under
``$XDG_RUNTIME_DIR`` (the workers inherit it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

ACCOUNT = "devstoreaccount1"


def worker_facts() -> dict[str, object]:
    """What a worker process runs with: its pid, whether the loopback guard is installed, its trust store."""
    guard = sys.modules.get("loopback_guard")
    return {"pid": os.getpid(), "guard": bool(guard is not None and guard._installed),
            "ssl_cert_file": os.environ.get("SSL_CERT_FILE", ""), "share": os.environ.get("MI_NOTEBOOK_SHARE", "")}


def tag_with_pid(frame):  # runs in the worker that read the partition
    return frame.assign(pid=os.getpid())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--imds-url", required=True)
    parser.add_argument("--account-url", default=None, help="omit: adlfs' default <account>.blob.core.windows.net")
    parser.add_argument("--ca", default=None)
    parser.add_argument("--container", required=True)
    parser.add_argument("--workers", type=int, default=0, help="0: pandas in this process; N: Dask, N processes")
    parser.add_argument("--share", action="store_true", help="share tokens through the agent")
    parser.add_argument("--credential", choices=("mi", "azure-identity", "azure-identity-aio"), default="mi")
    args = parser.parse_args(argv)

    from mi_notebook.data import abfs_options, trust_ca

    started = time.monotonic()
    try:
        if args.credential == "mi":
            import mi_notebook as mi

            mi.connect(args.imds_url, share=args.share)  # the credential travels as this endpoint (and sharing)
            options = abfs_options(ACCOUNT, account_url=args.account_url, ca_bundle=args.ca)  # mi.aio.credential()
        else:  # written the way people write it, without mi-notebook's checks
            if args.ca:
                trust_ca(args.ca)  # before anything imports aiohttp
            if args.credential == "azure-identity":
                from azure.identity import ManagedIdentityCredential
            else:
                from azure.identity.aio import ManagedIdentityCredential
            options = {"account_name": ACCOUNT, "credential": ManagedIdentityCredential()}
            if args.account_url:
                options["account_host"] = args.account_url.removeprefix("https://")
        result = read(args, options)
    except Exception as exc:  # the bench reports what happened; the tests read it
        causes = [exc]
        while causes[-1].__cause__ is not None or causes[-1].__context__ is not None:
            causes.append(causes[-1].__cause__ or causes[-1].__context__)
        root = causes[-1]  # e.g. Dask's TokenizationError over pickle's "cannot pickle ..."
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}".splitlines()[0][:300],
                          "cause": f"{type(root).__name__}: {root}".splitlines()[0][:300]}), flush=True)
        raise
    result["seconds"] = round(time.monotonic() - started, 2)
    result["parent"] = os.getpid()
    print(json.dumps(result), flush=True)
    return 0


def read(args: argparse.Namespace, options: dict[str, object]) -> dict[str, object]:
    if not args.workers:
        import pandas as pd

        frame = pd.read_csv(f"abfs://{args.container}/part-00.csv", storage_options=options)
        return {"rows": len(frame), "total": int(frame["units"].sum()), "pids": [os.getpid()]}
    import dask.dataframe as dd
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=40) as cluster, Client(cluster) as client:
        frame = dd.read_csv(f"abfs://{args.container}/part-*.csv", storage_options=options, blocksize=None)
        computed = frame.map_partitions(tag_with_pid).compute()
        return {"rows": len(computed), "total": int(computed["units"].sum()), "partitions": frame.npartitions,
                "pids": sorted({int(p) for p in computed["pid"]}), "workers": list(client.run(worker_facts).values())}


if __name__ == "__main__":
    sys.exit(main())
