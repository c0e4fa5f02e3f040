"""The browser demo in a real browser: Debian's chromium driven by Playwright.

Starts ``df2net serve`` with random weights, uploads the sample photo, waits for the 3D viewer
and the maps, checks the viewer draws something, switches the stage, downloads the zip, then
sends a file that is not an image and a file over the size limit and sees their messages while
the server goes on answering; no request may leave 127.0.0.1.

Needs ``apt-get install chromium`` and ``pip install playwright`` (never ``playwright install``:
the system chromium is used). Screenshots go to ``$DF2NET_TEST_ARTIFACTS`` (default: pytest's
temporary folder); with ``DF2NET_UPDATE_SCREENSHOT=1`` the page is also copied to
``docs/screenshot_web.png``.
"""

from __future__ import annotations

import io
import os
import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gradio", reason='the browser demo needs the web extra: pip install -e ".[web]"')
pytest.importorskip("playwright.sync_api", reason="the browser test needs Playwright: pip install playwright")

from test_web import FACE_FILES, serve  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).is_file():
    pytest.skip("the browser test needs Debian's chromium: apt-get install -y chromium", allow_module_level=True)

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO_ROOT = Path(__file__).resolve().parents[1]
WAIT_MS = 150_000  # one reconstruction on two busy cores, with room to spare


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("DF2NET_TEST_ARTIFACTS") or tmp_path_factory.mktemp("web_artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nbrowser screenshots in {folder}")
    return folder


@pytest.fixture(scope="module")
def page_on_server(random_weights, tmp_path_factory):
    """A chromium page on a fresh ``df2net serve`` with the shipped weights; every URL it
    requested is in ``requests``."""
    from playwright.sync_api import sync_playwright

    from df2net.model.weights import default_weights_path

    folder = tmp_path_factory.mktemp("web_browser")
    requests: list[str] = []
    weights = default_weights_path() or random_weights  # the real product, as a user sees it
    with serve(weights, folder) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1300}, accept_downloads=True)
            page = context.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.goto(server.url, wait_until="load")
            page.wait_for_selector("#df2net-run", timeout=60_000)
            yield page, server, requests
        finally:
            browser.close()


def _upload(page, path: Path, wait: bool = True) -> None:
    """Put ``path`` into the photo box; wait until the page holds it (its name is in the URL)."""
    page.locator("#df2net-photo input[type=file]").set_input_files(str(path))
    if wait:
        page.wait_for_selector(f'#df2net-photo img[src*="{path.name}"]', state="attached", timeout=30_000)


def _reconstruct(page, path: Path) -> None:
    """Upload ``path``, press Reconstruct, wait until the page shows its result."""
    _upload(page, path)
    page.click("#df2net-run")
    page.wait_for_function(
        "name => document.querySelector('#df2net-timings')?.innerText.includes(name)", arg=path.name, timeout=WAIT_MS
    )
    for element in ("#df2net-mesh canvas", "#df2net-depth img", "#df2net-normals img", "#df2net-preview img"):
        page.wait_for_selector(element, state="visible", timeout=30_000)


def _toasts(page) -> str:
    return "\n".join(page.locator(".toast-body").all_inner_texts())


def _canvas_pixels(page) -> np.ndarray:
    from PIL import Image

    png = page.locator("#df2net-mesh canvas").screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)


def test_page_reconstructs_shows_3d_and_downloads_zip(page_on_server, sample_photo, artifacts, tmp_path) -> None:
    page, server, requests = page_on_server
    _reconstruct(page, sample_photo)

    # The 3D viewer draws the face: not one flat colour. Give the renderer a moment first.
    deadline = time.monotonic() + 30
    while (spread := float(_canvas_pixels(page).std())) < 8 and time.monotonic() < deadline:
        time.sleep(1)
    page.locator("#df2net-mesh canvas").screenshot(path=str(artifacts / "web_mesh_canvas.png"))
    assert spread >= 8, f"the 3D viewer looks blank (pixel std {spread:.1f})"
    assert "face 0" in page.locator("#df2net-face").inner_text()
    page.screenshot(path=str(artifacts / "web_page.png"), full_page=True)
    if os.environ.get("DF2NET_UPDATE_SCREENSHOT") == "1":
        _save_small(artifacts / "web_page.png", REPO_ROOT / "docs" / "screenshot_web.png")

    # Switching the stage shows another depth map.
    before = page.locator("#df2net-depth img").get_attribute("src")
    page.get_by_label("D (dense)").check()
    page.wait_for_function(
        "old => { const img = document.querySelector('#df2net-depth img'); return img && img.src !== old; }",
        arg=before,
        timeout=60_000,
    )

    # The zip holds every file of the face.
    with page.expect_download(timeout=60_000) as download:
        page.locator("#df2net-zip a").first.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    with zipfile.ZipFile(saved) as archive:
        assert set(archive.namelist()) == {f"astronaut/face0/{name}" for name in FACE_FILES}

    _only_local(requests, server.url)


def test_bad_files_get_a_message_and_the_server_goes_on(page_on_server, sample_photo, artifacts, tmp_path) -> None:
    page, server, requests = page_on_server

    notes = tmp_path / "notes.png"
    notes.write_text("this is not an image\n")
    _upload(page, notes)
    page.click("#df2net-run")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.toast-body')].some(t => t.innerText.includes('notes.png: not an image'))",
        timeout=WAIT_MS,
    )
    page.wait_for_timeout(800)  # let the message slide in
    page.screenshot(path=str(artifacts / "web_not_an_image.png"))
    assert "notes.png: not an image (unrecognised file format)" in _toasts(page)

    huge = tmp_path / "huge.png"
    huge.write_bytes(os.urandom(21 * 2**20))
    _upload(page, huge, wait=False)
    page.wait_for_function(
        "() => [...document.querySelectorAll('.toast-body')].some(t => /exceed|too large/i.test(t.innerText))",
        timeout=60_000,
    )
    assert "huge.png" in _toasts(page)

    # A click on the sample photo reconstructs it.
    old_zip = page.locator("#df2net-zip a").first.get_attribute("href")
    page.locator("#df2net-samples button.gallery-item").first.click()
    page.wait_for_function(
        "old => { const a = document.querySelector('#df2net-zip a'); return a && a.href !== old; }",
        arg=old_zip,
        timeout=WAIT_MS,
    )
    assert "astronaut.png" in page.locator("#df2net-timings").inner_text()

    again = tmp_path / "again.png"
    shutil.copyfile(sample_photo, again)
    _reconstruct(page, again)
    assert float(_canvas_pixels(page).std()) >= 8
    assert server.process.poll() is None
    _only_local(requests, server.url)


def _save_small(source: Path, target: Path) -> None:
    """A copy of a screenshot for the docs: 1000 px wide, 256 colours."""
    from PIL import Image

    with Image.open(source) as image:
        image = image.convert("RGB")
        image = image.resize((1000, round(image.height * 1000 / image.width)), Image.Resampling.LANCZOS)
        image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(target, optimize=True)


def _only_local(requests: list[str], base: str) -> None:
    """Every request the page made went to the server; none fetched a font."""
    outside = [u for u in requests if not u.startswith(base) and not u.startswith(("data:", "blob:"))]
    assert outside == [], f"the page reached beyond the server: {outside[:5]}"
    fonts = [u for u in requests if u.split("?")[0].endswith((".woff", ".woff2", ".ttf", ".otf"))]
    assert fonts == [], f"the page fetched font files: {fonts[:5]}"
