"""Install requirements.txt (pinned by constraints.txt) and itlab into the running venv.

Why uv: on the 2-core CI machine pip took 164 s for these pins (140 s of it unpacking and
byte-compiling torch, transformers, deepspeed...), uv 15 s for the same versions. uv does not
read pip's configuration, so this passes pip's index settings (pip.conf files and PIP_* variables,
as ``pip config list`` reports them) to uv: the same wheels resolve either way, and a CPU torch
wheel found through pip's find-links stays the one installed. Where uv cannot be installed (no
index serves it), pip does the whole install as before.

    .venv/bin/python tools/install_env.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UV = "uv==0.13.9"
REQUIREMENTS = ["-r", str(ROOT / "requirements.txt"), "-c", str(ROOT / "constraints.txt")]
# pip option -> uv option; pip separates several values of one option by whitespace
INDEX_OPTIONS = {"index-url": "--index-url", "extra-index-url": "--extra-index-url", "find-links": "--find-links"}
# later scopes override earlier ones, as in pip (environment variables override every file)
SCOPE_ORDER = ("global", "user", "site", ":env:")


def pip_settings(config_list: str) -> dict[str, str]:
    """pip's effective settings from ``pip config list`` lines (``scope.key='value'``)."""
    ranked: dict[str, tuple[int, str]] = {}
    for line in config_list.splitlines():
        name, sep, value = line.partition("=")
        scope, dot, key = name.rpartition(".")
        if not (sep and dot) or scope not in SCOPE_ORDER:
            continue
        rank = SCOPE_ORDER.index(scope)
        if key not in ranked or rank >= ranked[key][0]:
            ranked[key] = (rank, value.strip().strip("'\""))
    return {key: value for key, (_, value) in ranked.items()}


def uv_index_args(settings: dict[str, str]) -> list[str]:
    """uv options resolving packages from the indexes pip would use, choosing as pip does."""
    args = ["--index-strategy", "unsafe-best-match"]  # pip picks the best version over all indexes
    for key, option in INDEX_OPTIONS.items():
        for value in settings.get(key, "").split():
            args += [option, value]
    return args


def run(*argv: str, env: dict[str, str] | None = None) -> int:
    print("+", " ".join(argv), flush=True)
    return subprocess.call(argv, env=env)


def main() -> int:
    python = sys.executable
    if run(python, "-m", "pip", "install", "-q", UV) == 0:
        listed = subprocess.run([python, "-m", "pip", "config", "list"], capture_output=True, text=True).stdout
        settings = pip_settings(listed)
        env = dict(os.environ)
        if settings.get("cert"):
            env.setdefault("SSL_CERT_FILE", settings["cert"])
        uv = [str(Path(python).parent / "uv"), "pip", "install", "-q", "--python", python]
        if run(*uv, *uv_index_args(settings), *REQUIREMENTS, env=env) == 0:
            return run(*uv, "--no-deps", "--no-build-isolation", "-e", str(ROOT), env=env)
        print("uv failed; installing with pip instead", file=sys.stderr)
    pip = [python, "-m", "pip", "install", "-q"]
    if run(*pip, "--upgrade", "pip", "-c", str(ROOT / "constraints.txt")) != 0:
        return 1
    if run(*pip, *REQUIREMENTS) != 0:
        return 1
    return run(*pip, "--no-deps", "--no-build-isolation", "-e", str(ROOT))


if __name__ == "__main__":
    sys.exit(main())
