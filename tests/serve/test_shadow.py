"""The shadow mirror: copies as tasks or, for inline models, as callbacks; one cap for both."""

from __future__ import annotations

import asyncio
import logging

import pytest

from proving.serve.shadow import ShadowMirror


def test_an_inline_copy_runs_after_the_submitting_step_not_during_it() -> None:
    async def main() -> None:
        mirror, ran = ShadowMirror(max_concurrency=4), []
        assert mirror.submit_inline(ran.append, "copy")
        assert ran == [] and mirror.inflight == 1  # the caller's step goes on first
        await asyncio.sleep(0)
        assert ran == ["copy"] and mirror.inflight == 0

    asyncio.run(main())


def test_the_cap_counts_inline_copies_and_tasks_together() -> None:
    async def main() -> None:
        mirror, release = ShadowMirror(max_concurrency=3), asyncio.Event()
        assert mirror.submit(release.wait)
        assert mirror.submit_inline(lambda: None)
        assert mirror.submit_inline(lambda: None)
        assert not mirror.submit_inline(lambda: None)  # at the cap: skipped, not queued
        assert not mirror.submit(release.wait)
        await asyncio.sleep(0)  # the inline copies ran; the task still waits
        assert mirror.inflight == 1
        assert mirror.submit_inline(lambda: None)
        release.set()
        await mirror.drain(1.0)
        assert mirror.inflight == 0

    asyncio.run(main())


def test_an_inline_copy_that_raises_is_logged_and_counted_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> None:
        raise ValueError("the challenger broke")

    async def main() -> list[str]:
        mirror, ran = ShadowMirror(max_concurrency=2), []
        assert mirror.submit_inline(broken)
        assert mirror.submit_inline(ran.append, "next")
        await asyncio.sleep(0)
        assert mirror.inflight == 0
        return ran

    with caplog.at_level(logging.ERROR, logger="proving.serve.shadow"):
        assert asyncio.run(main()) == ["next"]  # the failure stopped nothing after it
    assert "shadow copy failed" in caplog.text and "the challenger broke" in caplog.text


def test_drain_waits_for_inline_copies_and_cancels_tasks_past_the_timeout() -> None:
    async def main() -> None:
        mirror, ran, cancelled = ShadowMirror(max_concurrency=4), [], []

        async def hangs() -> None:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        assert mirror.submit(hangs)
        assert mirror.submit_inline(ran.append, "inline")
        started = asyncio.get_running_loop().time()
        await mirror.drain(0.1)
        assert 0.05 < asyncio.get_running_loop().time() - started < 1.0
        assert ran == ["inline"] and cancelled == [True] and mirror.inflight == 0

    asyncio.run(main())
