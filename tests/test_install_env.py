"""tools/install_env.py hands pip's index settings to uv, with pip's precedence."""

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("install_env", Path(__file__).resolve().parents[1] / "tools" / "install_env.py")
install_env = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(install_env)

LISTED = """\
:env:.find-links='/opt/wheels'
:env:.default-timeout='180'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/srv/old-wheels'
user.index-url='https://mirror.example/simple'
global.index-url='https://pypi.org/simple'
"""


def test_environment_overrides_files_and_user_overrides_global():
    settings = install_env.pip_settings(LISTED)
    assert settings["find-links"] == "/opt/wheels"
    assert settings["index-url"] == "https://mirror.example/simple"
    assert settings["cert"] == "/etc/ssl/certs/ca-certificates.crt"


def test_each_whitespace_separated_index_becomes_one_uv_option():
    args = install_env.uv_index_args(install_env.pip_settings(LISTED))
    pairs = list(zip(args[::2], args[1::2]))
    assert ("--index-strategy", "unsafe-best-match") in pairs
    assert ("--extra-index-url", "file:///opt/pypi/simple") in pairs
    assert ("--extra-index-url", "file:///opt/pypi-more/simple") in pairs
    assert ("--find-links", "/opt/wheels") in pairs and ("--find-links", "/srv/old-wheels") not in pairs
    assert ("--index-url", "https://mirror.example/simple") in pairs
    assert "--default-timeout" not in args
