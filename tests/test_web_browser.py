"""A real headless Chromium (Debian's, through its chromedriver) uses the upload page and the live view.

These run the real pipeline (`python -m realtime serve` / `--serve`) and need the merged one.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("REALTIME_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("REALTIME_CHROMEDRIVER", "/usr/bin/chromedriver")
SCREENSHOT_DIR = Path(os.environ.get("REALTIME_SCREENSHOTS", REPO / "out" / "screenshots"))


@pytest.fixture
def browser(tmp_path):
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("selenium is not installed — `make test` installs it from requirements.txt")
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not os.access(binary, os.X_OK):
            pytest.fail(f"{binary} not found — run `make system-deps` (Debian chromium, chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--autoplay-policy=no-user-gesture-required",
        "--window-size=1000,1200",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console messages, CSP reports among them
    os.environ.setdefault("SE_AVOID_STATS", "true")  # Selenium Manager must not phone home
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


class Server:
    """`python -m realtime ...` in a child process; its URL is read from what it prints."""

    def __init__(self, args: list[str], pattern: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "realtime", *args],
            cwd=REPO,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.output: list[str] = []
        found = threading.Event()
        self.url = ""

        def pump(pipe) -> None:  # keep reading so a full pipe never stalls the child
            for line in pipe:
                self.output.append(line)
                if not found.is_set() and (match := re.search(pattern, line)):
                    self.url = match.group(1)
                    found.set()

        for pipe in (self.proc.stdout, self.proc.stderr):
            threading.Thread(target=pump, args=(pipe,), daemon=True).start()
        deadline = time.monotonic() + 60
        while not found.wait(0.2) and self.proc.poll() is None and time.monotonic() < deadline:
            pass
        if not found.is_set():
            self.stop()
            pytest.fail("server did not start:\n" + "".join(self.output))

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def csp_violations(driver) -> list[str]:
    """Console messages about the Content-Security-Policy (Chromium logs each blocked load or inline code)."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if "Content Security Policy" in entry["message"] or "Refused to" in entry["message"]
    ]


def save_screenshot(driver, name: str) -> Path:
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / name
    driver.save_screenshot(str(path))
    print(f"screenshot: {path}")
    return path


def upload(driver, video: Path) -> None:
    """Choose a file in the upload page's picker and press its button, as a user does."""
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, "video-input").send_keys(str(video))
    driver.find_element(By.ID, "upload-button").click()


def wait_for(driver, script: str, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


# Records every value the progress bar takes, from before the upload starts.
WATCH_PROGRESS = """
window.progressSeen = [];
const bar = document.getElementById('progress');
new MutationObserver(() => window.progressSeen.push(bar.value)).observe(bar, {attributes: true});
const set = Object.getOwnPropertyDescriptor(HTMLProgressElement.prototype, 'value').set;
Object.defineProperty(bar, 'value', {set(v) { set.call(this, v); window.progressSeen.push(Number(v)); },
                                      get() { return Number(this.getAttribute('value')); }});
"""


def test_upload_page_shows_progress_plays_the_result_and_a_timeline_per_person(browser, exercise_clip, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    # Three people side by side (the shared exercise clip); 100 frames = 10 s at its 10 fps.
    server = Server(
        ["serve", "--port", "0", "--work-dir", str(tmp_path / "work"), "--max-frames", "100"],
        r"serving on (http://\S+)",
    )
    try:
        browser.get(server.url)
        browser.execute_script(WATCH_PROGRESS)
        upload(browser, exercise_clip)

        wait_for(
            browser,
            "return document.getElementById('status').textContent === 'Done.'",
            180,
            f"the job to finish (status: {browser.find_element(By.ID, 'status').text})",
        )
        seen = browser.execute_script("return window.progressSeen")
        assert seen[-1] == 100
        assert any(0 < value < 100 for value in seen), f"no progress shown between 0 and 100: {seen}"
        assert browser.find_element(By.ID, "percent").text == "100"
        assert browser.find_element(By.ID, "frames").text == "100 / 100"  # --max-frames caps the count shown
        assert browser.find_element(By.ID, "error").get_attribute("hidden")

        video = "document.getElementById('result-video')"
        wait_for(browser, f"return {video}.readyState >= 2", 30, "the result video to load")
        t0 = browser.execute_script(f"return {video}.currentTime")
        time.sleep(1.0)
        state = browser.execute_script(
            f"const v = {video}; return [v.currentTime, v.error && v.error.code, "
            "v.videoWidth, v.videoHeight, v.paused, v.readyState]"
        )
        current, error, width, height, paused, ready = state
        assert error is None and not paused and ready >= 2
        assert (width, height) == (384, 288)  # the clip's own size
        assert current > t0, f"the result does not play (currentTime {t0} -> {current})"
        links = [a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, "#result a")]
        assert any(link.endswith("/result?download=1") for link in links)
        events_link = next(link for link in links if link.endswith("/events.jsonl?download=1"))

        # The timeline: one row per person the events name, each segment in its class's colour.
        wait_for(browser, "return document.getElementById('timeline').dataset.ready === '1'", 10, "the timeline")
        events = [
            json.loads(line)
            for line in urllib.request.urlopen(events_link.removesuffix("?download=1"), timeout=10).read().splitlines()
        ]
        people = sorted({e["track"] for e in events if e["type"] == "action"})
        rows = browser.execute_script("""
            return [...document.querySelectorAll('#timeline g.timeline-row')].map((g) => ({
              track: Number(g.dataset.track),
              segments: [...g.querySelectorAll('rect.segment')].map((r) => [r.dataset.label, r.getAttribute('fill'),
                                                                             r.getBoundingClientRect().width])}))""")
        assert [row["track"] for row in rows] == people, (rows, people)
        assert len(people) >= 2, f"several people are in view, the timeline shows {len(people)} row(s)"
        colours = json.loads(
            urllib.request.urlopen(events_link.replace("/events.jsonl?download=1", "/timeline"), timeout=10).read()
        )["colours"]
        for row in rows:
            assert row["segments"], row
            for label, fill, drawn_width in row["segments"]:
                assert fill == colours[label] and drawn_width > 0
        labels_per_track = {
            t: {e["label"] for e in events if e["type"] == "action" and e["track"] == t} for t in people
        }
        assert [{s[0] for s in row["segments"]} for row in rows] == [labels_per_track[t] for t in people]

        # Clicking the timeline seeks the video to that moment of the clip.
        browser.execute_script(f"{video}.pause()")
        svg = browser.find_element(By.ID, "timeline")
        box = browser.execute_script("const b = arguments[0].getBoundingClientRect(); return [b.width, b.height]", svg)
        duration = float(svg.get_attribute("data-duration"))
        target = 0.6 * duration
        x_view = 52 + (640 - 52 - 14) * 0.6  # timeline.js LAYOUT: left 52, right 14, viewBox width 640
        ActionChains(browser).move_to_element_with_offset(
            svg, int(x_view * box[0] / 640 - box[0] / 2), int(12 - box[1] / 2)
        ).click().perform()
        seeked = browser.execute_script(f"return {video}.currentTime")
        assert abs(seeked - target) < 0.2, f"clicked at {target:.2f} s, the video is at {seeked:.2f} s"
        playhead = float(browser.find_element(By.ID, "playhead").get_attribute("x1"))
        assert abs(playhead - x_view) < 3

        assert csp_violations(browser) == []
        browser.execute_script(f"{video}.play()")
        time.sleep(0.5)  # let a few more frames play before the picture
        save_screenshot(browser, "web-upload-result.png")
    finally:
        assert server.stop() == 0, "".join(server.output)


def test_upload_page_reports_a_refused_file(browser, tmp_path):

    bogus = tmp_path / "holiday.mp4"
    bogus.write_bytes(b"not a video at all " * 100)
    server = Server(["serve", "--port", "0", "--work-dir", str(tmp_path / "work")], r"serving on (http://\S+)")
    try:
        browser.get(server.url)
        upload(browser, bogus)
        text = wait_for(
            browser,
            "const e = document.getElementById('error'); return !e.hidden && e.textContent",
            30,
            "an error message",
        )
        assert "not a video" in text
        assert csp_violations(browser) == []  # the page and its scripts pass the policy
    finally:
        server.stop()


def test_upload_page_plays_the_good_part_of_a_truncated_file_and_says_why(browser, exercise_clip, tmp_path):
    from selenium.webdriver.common.by import By

    cut = tmp_path / "holiday.avi"
    cut.write_bytes(exercise_clip.read_bytes()[:200_000])  # 39 of its 393 frames survive
    work = tmp_path / "work"
    server = Server(["serve", "--port", "0", "--work-dir", str(work)], r"serving on (http://\S+)")
    try:
        browser.get(server.url)
        upload(browser, cut)
        status = wait_for(
            browser,
            "const s = document.getElementById('status').textContent; return s.startsWith('Done') && s",
            120,
            "the job to finish",
        )
        assert "part of the video" in status
        warning = browser.find_element(By.ID, "warning")
        assert warning.is_displayed()
        assert "video holiday.avi ended at frame 39 of 393" in warning.text and "truncated or corrupt" in warning.text
        assert str(work) not in browser.find_element(By.TAG_NAME, "body").text  # no server path on the page
        assert browser.find_element(By.ID, "error").get_attribute("hidden")

        video = "document.getElementById('result-video')"
        wait_for(browser, f"return {video}.readyState >= 2", 30, "the result video to load")
        error, duration = browser.execute_script(f"const v = {video}; return [v.error && v.error.code, v.duration]")
        assert error is None and duration == pytest.approx(3.9, abs=0.15)  # the 39 good frames at 10 fps
        wait_for(browser, "return document.getElementById('timeline').dataset.ready === '1'", 10, "the timeline")
        assert csp_violations(browser) == []
        save_screenshot(browser, "web-upload-truncated.png")
    finally:
        assert server.stop() == 0, "".join(server.output)


def test_live_page_shows_every_camera_with_its_stream_and_labels(browser, datasets):
    jack, wave = datasets / "weizmann" / "jack" / "daria_jack.avi", datasets / "weizmann" / "wave2" / "ido_wave2.avi"
    server = Server(
        ["--source", f"gym={jack}", "--source", f"hall={wave}", "--headless", "--pace", "--serve", "127.0.0.1:0"],
        r"live view on (http://\S+)",
    )
    try:
        browser.get(server.url)
        panel = "document.querySelector('section.camera[data-camera=\"{}\"]')"
        for name in ("gym", "hall"):  # panels appear as each camera's first labels arrive
            wait_for(
                browser,
                f"const p = {panel.format(name)}; const i = p && p.querySelector('img.view'); "
                "return i && i.complete && i.naturalWidth > 0",
                60,
                f"camera {name}'s MJPEG stream",
            )
            assert browser.execute_script(f"return {panel.format(name)}.dataset.mode") == "live"
            assert browser.execute_script(f"return {panel.format(name)}.querySelector('img.view').naturalWidth") == 180
            label = wait_for(
                browser,
                f"const t = {panel.format(name)}.querySelector('.labels').textContent; return /#\\d+/.test(t) && t",
                30,
                f"a person's label on camera {name}",
            )
            assert re.search(r"#\d+\b", label)
        assert csp_violations(browser) == []
        time.sleep(1.0)  # a second of stream before the picture
        save_screenshot(browser, "web-live-view.png")
    finally:
        server.stop()


def test_live_page_with_more_cameras_than_a_browser_streams_at_once(browser):
    """Six cameras (drawn frames, no models): four play live, two are stills, every panel gets its labels
    (the SSE is not starved of a connection), and a click makes a still live in place of the oldest."""
    import numpy as np
    from selenium.webdriver.common.by import By

    from realtime.types import FrameRecord
    from realtime.web.live import LIVE_STREAMS_PER_PAGE, LiveViewServer

    names = ["door", "hall", "yard", "gate", "dock", "roof"]
    live = LiveViewServer("127.0.0.1", 0, cameras=names)
    stop = threading.Event()

    def feed_cameras() -> None:  # 25 frames/s per camera, as a pipeline would write them
        index = 0
        while not stop.wait(0.04):
            for k, name in enumerate(names):
                live.write(FrameRecord(name, index, time.monotonic(), np.full((120, 160, 3), 40 * k, np.uint8)))
            index += 1

    writer = threading.Thread(target=feed_cameras)
    writer.start()
    try:
        browser.get(live.url)
        modes = "return [...document.querySelectorAll('section.camera')].map((p) => p.dataset.mode)"
        assert browser.execute_script(modes) == ["live"] * LIVE_STREAMS_PER_PAGE + ["still"] * 2
        wait_for(
            browser,
            "return [...document.querySelectorAll('section.camera')].every((p) => "
            "p.querySelector('img.view').naturalWidth === 160 && "
            "p.querySelector('.frame').textContent !== '\\u2013')",
            30,
            "every panel's picture and labels",
        )
        browser.find_element(By.CSS_SELECTOR, "section.camera[data-camera='roof'] img.view").click()
        assert browser.execute_script(modes) == ["still", "live", "live", "live", "still", "live"]
        wait_for(
            browser,
            "const p = document.querySelector('section.camera[data-camera=\"door\"]'); "
            "return p.querySelector('img.view').src.includes('/frame/door.jpg')",
            10,
            "door to be a still",
        )
        assert csp_violations(browser) == []
    finally:
        stop.set()
        writer.join()
        live.close()
