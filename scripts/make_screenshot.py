"""Write docs/screen.svg: the inspector on the bundled demo (problem checkpoint), 160x48.

Run: ``python scripts/make_screenshot.py [OUT.svg]``. Timings are frozen so the picture only
changes when the app or the demo does.
"""

from __future__ import annotations

import asyncio
import sys
import time
from importlib import resources
from pathlib import Path

from fga_tui.tui.app import FgaApp
from fga_tui.tui.session import Session, SessionOptions


async def main(out: Path) -> None:
    demo = Path(str(resources.files("fga_tui").joinpath("data/demo")))
    session = Session(SessionOptions(demo / "demo_problem.pt", demo / "ba4hfli.json", device="cpu"))
    app = FgaApp(session=session, theme="textual-dark", frozen_timings="load 0.5s trace 40ms")
    async with app.run_test(size=(160, 48)) as pilot:
        start = time.monotonic()
        while (app.view is None or app.busy) and time.monotonic() - start < 120:
            await asyncio.sleep(0.1)
        await app.workers.wait_for_complete()
        await pilot.pause(0.3)
        app.save_screenshot(out.name, str(out.parent))


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screen.svg").resolve()
    asyncio.run(main(target))
    print(target)
