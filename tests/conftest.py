"""Shared fixtures: the provider emulators, a platform trap, and a real mitmdump running byok-proxy."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from addon.emulators.runner import Emulators, start_emulators
from addon.harness import (
    CREDENTIAL_ENV_PREFIXES,
    REPO,
    PlatformTrap,
    Proxy,
    free_port,
    provider_env,
    start_proxy,
)


@pytest.fixture(autouse=True, scope="session")
def isolated_environment() -> Iterator[None]:
    """Whatever credentials or cloud settings the machine running the tests has, the tests see none of
    them: only the fake ones each test sets itself."""
    with pytest.MonkeyPatch.context() as mp:
        for name in list(os.environ):
            if name.startswith(CREDENTIAL_ENV_PREFIXES):
                mp.delenv(name)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        mp.setenv("AWS_CONFIG_FILE", "/nonexistent/aws-config")
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aws-credentials")
        yield


@pytest.fixture(scope="session")
def emulators(tmp_path_factory) -> Iterator[Emulators]:
    emus = start_emulators(tmp_path_factory.mktemp("emulators"))
    yield emus
    emus.stop()


@pytest.fixture(scope="session")
def trap() -> Iterator[PlatformTrap]:
    trap = PlatformTrap(free_port()).start()
    yield trap
    trap.stop()


@pytest.fixture(scope="module", params=["forward", "reverse"])
def proxy(request, tmp_path_factory, emulators, trap) -> Iterator[Proxy]:
    """mitmdump on the demo rules, in forward-proxy and in reverse mode."""
    workdir = tmp_path_factory.mktemp(f"proxy-{request.param}")
    env = provider_env(emulators, f"127.0.0.1:{trap.port}")
    proxy = start_proxy(
        workdir, REPO / "rules" / "demo.yaml", env, trap.port, mode=request.param,
        # Flows saved and printed in full, so tests can check neither ever holds a credential.
        extra=("--set", f"save_stream_file={workdir / 'flows.mitm'}", "--set", "flow_detail=4"),
    )
    yield proxy
    proxy.stop()
    assert trap.connections == [], "a connection reached the platform address while BYOK was on"


@pytest.fixture
def own_trap() -> Iterator[PlatformTrap]:
    """A platform address of the test's own, for a test that runs its own proxy; nothing may reach it
    unless the test expects pass-through (and asserts it)."""
    trap = PlatformTrap(free_port()).start()
    yield trap
    trap.stop()
