"""The README's picture of the upload page (docs/web-upload.png): a real job in a real Chromium.

    python scripts/screenshot_web.py [--clip VIDEO] [--at SECONDS] [--out docs/web-upload.png]

Starts `python -m realtime serve` on a free port with a throw-away work folder, uploads the
clip (default: a Weizmann jumping-jacks clip from the shared datasets), waits for the result,
stops the video at --at seconds (after the first action window, so the label is on screen)
and saves the browser's view. Needs Debian's chromium and chromium-driver, and selenium.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("REALTIME_DATASETS", REPO.parent / "shared" / "datasets"))
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def start_server(work: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "realtime", "serve", "--port", "0", "--work-dir", str(work)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    line = proc.stdout.readline() if proc.stdout else ""
    match = re.search(r"serving on (http://\S+)", line)
    if not match:
        proc.kill()
        sys.exit(f"the server did not start: {line}")
    return proc, match.group(1)


def browser(profile: Path, width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium Manager must not phone home
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--autoplay-policy=no-user-gesture-required",
        f"--window-size={width},{height}",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def wait_for(driver, script: str, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    raise SystemExit(f"timed out after {timeout:g} s waiting for {what}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--clip", type=Path, default=DATASETS / "weizmann" / "jack" / "daria_jack.avi")
    p.add_argument("--at", type=float, default=2.5, help="video time shown, in seconds (default 2.5)")
    p.add_argument("--out", type=Path, default=REPO / "docs" / "web-upload.png")
    p.add_argument("--size", default="1000x1080", help="browser window WIDTHxHEIGHT (default 1000x1080)")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    from selenium.webdriver.common.by import By

    with tempfile.TemporaryDirectory(prefix="realtime-shot-") as tmp:
        proc, url = start_server(Path(tmp) / "work")
        driver = browser(Path(tmp) / "profile", width, height)
        try:
            driver.get(url)
            driver.find_element(By.ID, "video-input").send_keys(str(args.clip.resolve()))
            driver.find_element(By.ID, "upload-button").click()
            wait_for(driver, "return document.getElementById('status').textContent === 'Done.'", 300, "the job")
            wait_for(driver, "return document.getElementById('timeline').dataset.ready === '1'", 30, "the timeline")
            video = "document.getElementById('result-video')"
            wait_for(driver, f"return {video}.readyState >= 2", 30, "the result video")
            driver.execute_script(f"const v = {video}; v.pause(); v.currentTime = arguments[0];", args.at)
            wait_for(driver, f"return !{video}.seeking && {video}.readyState >= 2", 10, "the seek")
            # The timeline's playhead follows `timeupdate`, which a paused seek also fires.
            time.sleep(0.3)
            notices = driver.find_element(By.ID, "notices").text
            if re.search(r"(/|\\)(tmp|home|work|var)\b", notices):
                raise SystemExit(f"a machine path is on the page: {notices!r}")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
            print(f"saved {args.out}")
        finally:
            driver.quit()
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
