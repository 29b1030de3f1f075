"""`wa certs init`, the --tls-* flags (and WA_TLS_* / wa.toml keys) on `wa` commands, `wa config show`."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from worker_abstraction import RegistryServer, TLSConfig, WorkerInfo
from worker_abstraction.cli.config import SETTINGS, Settings
from worker_abstraction.cli.main import build_parser, main

pytestmark = pytest.mark.timeout(30)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No WA_* variable from the outside, the current directory empty, logging given back as it was."""
    for setting in SETTINGS:
        monkeypatch.delenv(setting.env, raising=False)
    monkeypatch.delenv("WA_CONFIG", raising=False)
    monkeypatch.chdir(tmp_path)
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def pki(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["certs", "init", str(tmp_path / "pki")]) == 0
    capsys.readouterr()
    return tmp_path / "pki"


def test_certs_init_writes_keys_0600_says_how_to_use_them_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["certs", "init", "pki"]) == 0
    out = capsys.readouterr().out
    assert "wrote pki/ca.pem" in out and "--tls-client-auth" in out
    assert stat.S_IMODE((tmp_path / "pki" / "worker.key").stat().st_mode) == 0o600
    assert main(["certs", "init", "pki"]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["certs", "init", "pki", "--force"]) == 0


def test_config_show_has_the_tls_settings_from_env_and_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "wa.toml").write_text('tls_ca = "pki/ca.pem"\ntls_client_auth = true\n')
    monkeypatch.setenv("WA_TLS_CERT", "pki/server.pem")
    assert main(["config", "show", "--json"]) == 0
    settings = json.loads(capsys.readouterr().out)["settings"]
    assert settings["tls_cert"] == {"value": "pki/server.pem", "from": "env WA_TLS_CERT"}
    assert settings["tls_ca"]["value"] == "pki/ca.pem"
    assert settings["tls_client_auth"]["value"] is True
    assert settings["tls_key"]["value"] is None


def test_unusable_tls_settings_are_usage_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["workers", "--tls-ca", "missing.pem"]) == 2
    monkeypatch.setenv("WA_TLS_CLIENT_AUTH", "maybe")
    assert main(["config", "show"]) == 2


@pytest.fixture
async def mtls_registry(pki: Path) -> AsyncIterator[RegistryServer]:
    tls = TLSConfig(cert=pki / "server.pem", key=pki / "server.key", ca=pki / "ca.pem", require_client_cert=True)
    async with RegistryServer(port=0, tls=tls) as server:
        await server.registry.register(WorkerInfo(worker_id="w1", name="w1", address="127.0.0.1:6001"))
        yield server


async def test_wa_workers_reaches_an_mtls_registry_with_the_flags(
    mtls_registry: RegistryServer, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = build_parser(Settings.load({}))
    flags = ["--tls-cert", f"{pki}/operator.pem", "--tls-key", f"{pki}/operator.key", "--tls-ca", f"{pki}/ca.pem"]
    args = parser.parse_args(["workers", "--registry", mtls_registry.address, "--json", *flags])
    assert await args.run(args) == 0
    assert [w["worker_id"] for w in json.loads(capsys.readouterr().out)] == ["w1"]
    plain = parser.parse_args(["workers", "--registry", mtls_registry.address, "--timeout", "3"])
    assert await plain.run(plain) == 1
    assert "TLS" in capsys.readouterr().err
