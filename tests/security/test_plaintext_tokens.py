"""Tokens cross the network as written: a server that checks them without TLS says so at start, and
`--require-tls` refuses to run without TLS at all."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from worker_abstraction import RegistryServer, TLSConfig, certs
from worker_abstraction.auth import Authenticator, TokenFile
from worker_abstraction.cli.main import main

TOKENS = '[[principal]]\nname = "client/a"\nroles = ["client"]\ntoken = "client-token-0123456789"\n'


async def test_a_server_checking_tokens_over_plaintext_warns_at_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "tokens.toml").write_text(TOKENS)
    checks = Authenticator(TokenFile(tmp_path / "tokens.toml"))
    with caplog.at_level(logging.WARNING, logger="worker_abstraction._rpc"):
        async with RegistryServer(port=0, auth=checks):
            pass
    assert any("plaintext" in r.getMessage() and "--require-tls" in r.getMessage() for r in caplog.records)


async def test_no_warning_over_tls_or_without_tokens(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "tokens.toml").write_text(TOKENS)
    certs.init_dir(tmp_path / "pki")
    tls = TLSConfig(cert=tmp_path / "pki" / "server.pem", key=tmp_path / "pki" / "server.key")
    with caplog.at_level(logging.WARNING, logger="worker_abstraction._rpc"):
        async with RegistryServer(port=0, auth=Authenticator(TokenFile(tmp_path / "tokens.toml")), tls=tls):
            pass
        async with RegistryServer(port=0):
            pass
    assert not [r for r in caplog.records if "plaintext" in r.getMessage()]


@pytest.mark.parametrize("command", [["registry"], ["submit", "echo"], ["workers"]])
def test_require_tls_refuses_to_run_without_tls(
    command: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WA_CONFIG", raising=False)
    assert (
        main([*command, "--require-tls", "--port", "0"] if command == ["registry"] else [*command, "--require-tls"])
        == 2
    )
    assert "--require-tls" in capsys.readouterr().err
