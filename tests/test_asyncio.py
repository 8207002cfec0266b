"""asyncio: waiting without a thread, and cancellation ending the child.

Children signal readiness ("ready" on stdout) before anything is done to them;
timeouts here are deadlock nets, never what a test measures.
"""

from __future__ import annotations

import asyncio
import signal

import psutil
import pytest
from helpers import DEADLOCK_NET, ready, wait_gone

import goforkpy as fork


def test_run_async_and_wait_async() -> None:
    async def main() -> tuple[int, int, int]:
        child = fork.fork("add", 2, 2)
        code = await child.wait_async()
        gathered = await asyncio.gather(*(fork.run_async("add", i, i) for i in range(3)))
        return code, await child.result_async(), sum(gathered)

    assert asyncio.run(main()) == (0, 4, 6)


def test_cancelled_task_leaves_no_process() -> None:
    async def main() -> int:
        child = fork.spawn("sleep_with_grandchild", stdout=fork.PIPE)
        await asyncio.get_running_loop().run_in_executor(None, ready, child)
        family = [p.pid for p in psutil.Process(child.pid).children(recursive=True)]
        task = asyncio.ensure_future(child.result_async())
        await asyncio.sleep(0)  # let the task start waiting
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert child.returncode == -signal.SIGTERM
        child.stdout.close()  # type: ignore[union-attr]
        return len(wait_gone([child.pid, *family], DEADLOCK_NET))

    assert asyncio.run(main()) == 0


def test_wait_for_timeout_terminates() -> None:
    async def main() -> int | None:
        child = fork.fork("sleep_for", 300.0)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(child.wait_async(), 0.2)
        return child.returncode

    assert asyncio.run(main()) == -signal.SIGTERM
