"""Fixtures every test may use: real databases, the FCM and Web Push emulators, a
loopback-only network."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dispatcher.testing.fcm_emulator import FcmEmulator
from dispatcher.testing.webpush_emulator import WebPushEmulator

pytest_plugins = ["tests.support.databases", "tests.support.faults"]


_real_getaddrinfo = socket.getaddrinfo
_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex


def _loopback(host: Any) -> bool:
    if host in ("localhost", "", None):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def _check(address: Any) -> None:
    if isinstance(address, tuple) and not _loopback(address[0]):
        raise AssertionError(f"a test tried to reach {address[0]!r}: tests stay on loopback")


def _guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    if not _loopback(host):
        raise AssertionError(f"a test tried to resolve {host!r}: tests stay on loopback")
    return _real_getaddrinfo(host, *args, **kwargs)


def _guarded_connect(self: socket.socket, address: Any) -> Any:
    _check(address)
    return _real_connect(self, address)


def _guarded_connect_ex(self: socket.socket, address: Any) -> Any:
    _check(address)
    return _real_connect_ex(self, address)


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may reach beyond this machine (Google's servers least of all)."""
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)


@pytest.fixture
async def fcm_emulator() -> AsyncIterator[FcmEmulator]:
    async with FcmEmulator() as emu:
        yield emu


@pytest.fixture
def fcm_credentials(fcm_emulator: FcmEmulator, tmp_path: Path) -> Path:
    return fcm_emulator.write_service_account(tmp_path / "service-account.json")


@pytest.fixture
async def webpush_emulator() -> AsyncIterator[WebPushEmulator]:
    async with WebPushEmulator() as emu:
        yield emu
