"""The client tutorial (``docs/tutorial-client.md``) runs as written against the all-in-one server.

Its Python blocks are joined into one module, exactly as a reader saves them as ``chat.py``; each step is
then run against a server started in this process, and what it returns and prints is checked."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.anyio

TUTORIAL = Path(__file__).resolve().parents[2] / "docs" / "tutorial-client.md"


def tutorial_module() -> dict[str, Any]:
    blocks = re.findall(r"```python\n(.*?)```", TUTORIAL.read_text(encoding="utf-8"), flags=re.DOTALL)
    assert len(blocks) >= 6, "the tutorial lost its code"
    namespace: dict[str, Any] = {"__name__": "chat"}
    exec(compile("\n".join(blocks), str(TUTORIAL), "exec"), namespace)
    return namespace


async def test_the_tutorial_runs_as_written(capsys: pytest.CaptureFixture[str]) -> None:
    from imsdk_server.allinone import AllInOne, AllInOneConfig
    from imsdk_server.config import HostPort

    chat = tutorial_module()
    config = AllInOneConfig(http=HostPort("127.0.0.1", 0), tcp=HostPort("127.0.0.1", 0))
    async with AllInOne(config) as server:
        assert server.http_address is not None
        url = f"http://127.0.0.1:{server.http_address[1]}"
        await chat["create_accounts"](url)
        await chat["create_accounts"](url)  # a second run finds the accounts there
        await chat["alice_writes_first"](url)
        assert await chat["bob_reads"](url) == ["Are you coming tonight?", "meet here"]
        assert await chat["burst_with_a_network_switch"](url) == [f"line {i}" for i in range(1, 11)]
        assert await chat["instant_to_offline"](url) == "RECEIVER_OFFLINE"
    printed = capsys.readouterr().out.splitlines()
    assert printed == [
        "alice: stored as #1 of our conversation",
        "bob: #1 from alice: Are you coming tonight?",
        "bob: #2 from alice: meet here",
        "alice: not delivered (RECEIVER_OFFLINE)",
    ]
