"""How long each misconfiguration takes to fail, on the local secured broker (median of --runs; the limit is 15 s).

python bench/security_errors.py [--port 19192] [--runs 3]    # results in bench/results/security_errors.json
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from streamer.kafka.devbroker import LocalKafka, up  # noqa: E402
from streamer.kafka.secure import make_ca  # noqa: E402


def _cases(kafka: LocalKafka) -> dict[str, tuple[dict[str, str], list[str]]]:
    worker, nobody = kafka.client_env("worker"), kafka.client_env("nobody")
    other_ca = make_ca(Path(tempfile.mkdtemp()), "other", "/CN=another CA")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    tail = ["tail", "alerts", "--idle-timeout", "2"]
    return {
        "wrong_password": ({**worker, "VITALS_SASL_PASSWORD": "wrong"}, tail),
        "wrong_password_worker": ({**worker, "VITALS_SASL_PASSWORD": "wrong"}, ["worker"]),
        "wrong_ca": ({**worker, "VITALS_SSL_CAFILE": str(other_ca)}, tail),
        "missing_ca": ({**worker, "VITALS_SSL_CAFILE": "/nonexistent/ca.pem"}, tail),
        "plaintext_on_tls": ({"VITALS_KAFKA_BOOTSTRAP": kafka.bootstrap}, tail),
        "tls_on_plaintext_listener": ({**worker, "VITALS_KAFKA_BOOTSTRAP": f"127.0.0.1:{kafka.controller_port}"}, tail),
        "unreachable": ({"VITALS_KAFKA_BOOTSTRAP": f"127.0.0.1:{closed_port}"}, tail),
        "unauthorised_tail": (nobody, tail),
        "unauthorised_produce": (nobody, ["produce"]),
        "unauthorised_worker": (nobody, ["worker"]),
    }


def _time(env: dict[str, str], args: list[str]) -> tuple[float, int, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VITALS_")}
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "streamer.cli.main", *args],
        cwd=REPO, env={**clean, **env, "VITALS_DATA_DIR": tempfile.mkdtemp()}, input=b"{}\n",
        capture_output=True, timeout=120,
    )  # fmt: skip
    return time.monotonic() - t0, proc.returncode, proc.stderr.decode(errors="replace").strip()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("VITALS_TEST_SECURE_KAFKA_PORT", "19192")))
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    kafka = LocalKafka(name=f"secure-{args.port}", port=args.port, controller_port=args.port + 1, secure=True)
    up(kafka)
    results = {}
    for name, (env, command) in _cases(kafka).items():
        runs = [_time(env, command) for _ in range(args.runs)]
        results[name] = {
            "command": command[0],
            "median_s": round(statistics.median(r[0] for r in runs), 2),
            "max_s": round(max(r[0] for r in runs), 2),
            "exit_codes": sorted({r[1] for r in runs}),
            "stderr_lines": max(len(r[2].splitlines()) for r in runs),
            "line": runs[-1][2][:300],
        }
        print(f"{name:28s} {results[name]['median_s']:5.2f} s  exit {results[name]['exit_codes']}")
    out = {"loadavg": Path("/proc/loadavg").read_text().split()[:3], "runs": args.runs, "cases": results}
    (REPO / "bench" / "results" / "security_errors.json").write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
