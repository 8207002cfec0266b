"""A ``Child``'s waits for asyncio: on the event loop, without a thread per wait."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from typing import Any, Callable


class Awaiting:
    """``wait_async`` and ``result_async``, on what ``ExitWatch`` and ``Child`` give."""

    _when_exited: Callable[[Callable[[Any], None]], None]
    terminate: Callable[[], None]
    wait: Callable[[], int]
    result: Callable[[], Any]

    async def wait_async(self) -> int:
        """``wait()`` for asyncio, without a thread; cancelling it terminates the child."""
        import asyncio

        loop = asyncio.get_running_loop()
        exited = loop.create_future()

        def wake(_: object) -> None:
            try:
                loop.call_soon_threadsafe(_set_if_pending, exited)
            except RuntimeError:
                pass  # the loop closed while the child ran

        self._when_exited(wake)
        try:
            await exited
        except asyncio.CancelledError:
            await loop.run_in_executor(None, self.terminate)
            raise
        return self.wait()

    async def result_async(self) -> Any:
        """``result()`` for asyncio; cancelling it terminates the child."""
        await self.wait_async()
        return self.result()


def _set_if_pending(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
