"""Fixtures every test may use: real databases, the FCM emulator, a loopback-only network."""

from __future__ import annotations

pytest_plugins = ["tests.support.databases"]
