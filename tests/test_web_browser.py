"""The browser demo in a real browser: Debian's chromium driven by Playwright.

Starts ``df2net serve`` with the shipped weights, uploads the sample photo, waits for the 3D
viewer and the maps, checks the viewer draws the face, switches the stage, downloads the zip, then
sends a file that is not an image and a file over the size limit and sees their messages while
the server goes on answering; no request may leave 127.0.0.1.

Every check waits for the state it looks for (the viewer's canvas drawn, a message shown, a file
downloaded), polled in the page, up to :data:`WAIT_MS`; none sleeps a fixed time or reads a state
once, so a busy machine makes the test slower, never red.

Needs ``apt-get install chromium`` and ``pip install playwright`` (never ``playwright install``:
the system chromium is used). Screenshots go to ``$DF2NET_TEST_ARTIFACTS`` (default: pytest's
temporary folder); with ``DF2NET_UPDATE_SCREENSHOT=1`` the page is also copied to
``docs/screenshot_web.png``.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

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
#: The longest any one step (server start, page load, one reconstruction, the viewer drawing) may
#: take. Generous: on two cores shared with other jobs a step can take minutes; a step that never
#: happens still fails, after this long.
WAIT_MS = 600_000
POLL_MS = 250  # how often the page checks the state waited for

#: Run in the page before its own scripts: WebGL canvases keep their last frame, so the page can
#: read the 3D viewer's pixels back at any time (by default a WebGL canvas reads back blank once
#: its frame is shown). It changes nothing the viewer draws.
READABLE_WEBGL = """
(() => {
  const getContext = HTMLCanvasElement.prototype.getContext;
  HTMLCanvasElement.prototype.getContext = function (type, attributes) {
    if (String(type).startsWith("webgl")) attributes = { ...(attributes || {}), preserveDrawingBuffer: true };
    return getContext.call(this, type, attributes);
  };
})();
"""

#: In the page: a small copy of the viewer's canvas (``{width, height, rgb}``, 96 pixels wide),
#: or null while the canvas is missing or has drawn nothing yet.
CANVAS_PICTURE = """
() => {
  const canvas = document.querySelector("#df2net-mesh canvas");
  if (!canvas || !canvas.width || !canvas.height) return null;
  const width = 96, height = Math.max(1, Math.round((96 * canvas.height) / canvas.width));
  const copy = document.createElement("canvas");
  copy.width = width;
  copy.height = height;
  const context = copy.getContext("2d", { willReadFrequently: true });
  context.drawImage(canvas, 0, 0, width, height);
  const rgba = context.getImageData(0, 0, width, height).data;
  if (rgba[3] < 255) return null; // a transparent corner: nothing drawn yet
  const rgb = [];
  for (let i = 0; i < rgba.length; i += 4) rgb.push(rgba[i], rgba[i + 1], rgba[i + 2]);
  return { width, height, rgb };
}
"""

#: In the page: true once the viewer shows a mesh, i.e. at least ``minShare`` of its pixels differ
#: clearly from the background (the corner pixel) and, when ``before`` (a :data:`CANVAS_PICTURE`)
#: is given, at least ``minShare`` differ clearly from that earlier picture too.
CANVAS_DRAWN = (
    """
([before, minShare]) => {
  const picture = ("""
    + CANVAS_PICTURE
    + """)();
  if (!picture) return false;
  const { rgb } = picture, pixels = rgb.length / 3;
  const far = (a, i, b, j) =>
    Math.abs(a[i] - b[j]) + Math.abs(a[i + 1] - b[j + 1]) + Math.abs(a[i + 2] - b[j + 2]) > 60;
  let face = 0, changed = 0;
  for (let i = 0; i < rgb.length; i += 3) {
    if (far(rgb, i, rgb, 0)) face++;
    if (before && before.rgb.length === rgb.length && far(rgb, i, before.rgb, i)) changed++;
  }
  return face >= minShare * pixels && (!before || changed >= minShare * pixels);
}
"""
)
MIN_SHARE = 0.03  # of the canvas: the face covers about a quarter of it


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
    with serve(weights, folder, timeout=WAIT_MS / 1000) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=WAIT_MS)
        try:
            context = browser.new_context(viewport={"width": 1400, "height": 1300}, accept_downloads=True)
            context.set_default_timeout(WAIT_MS)  # every wait, click, download and screenshot
            context.add_init_script(READABLE_WEBGL)
            page = context.new_page()
            page.on("request", lambda request: requests.append(request.url))
            page.goto(server.url, wait_until="load")
            page.wait_for_selector("#df2net-run")
            yield page, server, requests
        finally:
            browser.close()


def _wait(page, script: str, arg=None, what: str = "") -> None:
    """Wait until ``script`` (a JavaScript function of ``arg``) is true in the page, polled every
    :data:`POLL_MS` up to :data:`WAIT_MS`; fail saying ``what`` was not seen."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(script, arg=arg, polling=POLL_MS, timeout=WAIT_MS)
    except PlaywrightTimeout:
        pytest.fail(f"not seen within {WAIT_MS / 1000:.0f} s: {what or script}")


def _upload(page, path: Path, wait: bool = True) -> None:
    """Put ``path`` into the photo box; wait until the page holds it (its name is in the URL)."""
    page.locator("#df2net-photo input[type=file]").set_input_files(str(path))
    if wait:
        page.wait_for_selector(f'#df2net-photo img[src*="{path.name}"]', state="attached")


def _reconstruct(page, path: Path) -> None:
    """Upload ``path``, press Reconstruct, wait until the page shows its result: its timings, the
    maps, and the 3D viewer drawing a mesh that looks different from what it showed before."""
    before = page.evaluate(CANVAS_PICTURE)
    _upload(page, path)
    page.click("#df2net-run")
    _timings_name(page, path.name)
    for element in ("#df2net-depth img", "#df2net-normals img", "#df2net-preview img"):
        page.wait_for_selector(element, state="visible")
    _viewer_drawn(page, before)


def _timings_name(page, name: str) -> None:
    """Wait until the timings under the photo are those of ``name``."""
    _wait(
        page,
        "name => document.querySelector('#df2net-timings')?.innerText.includes(name)",
        name,
        f"the timings of {name}",
    )


def _viewer_drawn(page, before=None) -> None:
    """Wait until the 3D viewer draws a mesh (and, given ``before``, a picture unlike that one)."""
    _wait(page, CANVAS_DRAWN, [before, MIN_SHARE], "the 3D viewer drawing the mesh" + (" anew" if before else ""))


def _toast(page, pattern: str, what: str) -> None:
    """Wait until a message (a toast) matching the regular expression ``pattern`` (any case) is shown."""
    _wait(
        page,
        "source => [...document.querySelectorAll('.toast-body')].some(t => new RegExp(source, 'i').test(t.innerText))",
        pattern,
        f"the message {what!r}",
    )


def _contains_text(page, selector: str, text: str) -> None:
    """Wait until the element ``selector`` holds ``text``."""
    from playwright.sync_api import expect

    expect(page.locator(selector)).to_contain_text(text, timeout=WAIT_MS)


def test_page_reconstructs_shows_3d_and_downloads_zip(page_on_server, sample_photo, artifacts, tmp_path) -> None:
    page, server, requests = page_on_server
    _reconstruct(page, sample_photo)  # waits for the viewer to draw the face
    page.locator("#df2net-mesh canvas").screenshot(path=str(artifacts / "web_mesh_canvas.png"))
    _contains_text(page, "#df2net-face", "face 0")
    page.screenshot(path=str(artifacts / "web_page.png"), full_page=True)
    if os.environ.get("DF2NET_UPDATE_SCREENSHOT") == "1":
        _save_small(artifacts / "web_page.png", REPO_ROOT / "docs" / "screenshot_web.png")

    # Switching the stage shows another depth map.
    before = page.locator("#df2net-depth img").get_attribute("src")
    page.get_by_label("D (dense)").check()
    _wait(
        page,
        "old => { const img = document.querySelector('#df2net-depth img'); return img && img.src !== old; }",
        before,
        "the depth map of stage D",
    )

    # The zip holds every file of the face.
    with page.expect_download() as download:
        page.locator("#df2net-zip a").first.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)  # waits until the download is complete
    with zipfile.ZipFile(saved) as archive:
        assert set(archive.namelist()) == {f"astronaut/face0/{name}" for name in FACE_FILES}

    _only_local(requests, server.url)


def test_bad_files_get_a_message_and_the_server_goes_on(page_on_server, sample_photo, artifacts, tmp_path) -> None:
    from PIL import Image, ImageOps

    page, server, requests = page_on_server

    notes = tmp_path / "notes.png"
    notes.write_text("this is not an image\n")
    _upload(page, notes)
    page.click("#df2net-run")
    _toast(page, r"notes\.png: not an image \(unrecognised file format\)", "notes.png: not an image")
    page.screenshot(path=str(artifacts / "web_not_an_image.png"), animations="disabled")  # the toast slid in

    huge = tmp_path / "huge.png"
    huge.write_bytes(os.urandom(21 * 2**20))
    _upload(page, huge, wait=False)
    _toast(page, r"huge\.png[^]*(exceed|too large)|(exceed|too large)[^]*huge\.png", "huge.png is too large")

    # A click on the sample photo reconstructs it (there may be no zip yet when this test runs alone).
    old_zip = page.evaluate("() => document.querySelector('#df2net-zip a')?.href ?? null")
    page.locator("#df2net-samples button.gallery-item").first.click()
    _wait(
        page,
        "old => { const a = document.querySelector('#df2net-zip a'); return a && a.href !== old; }",
        old_zip,
        "the zip of the sample photo",
    )
    _timings_name(page, "astronaut.png")

    # And the server still reconstructs an upload: the sample's mirror image, so that the viewer
    # must draw a new picture, not keep the sample's.
    again = tmp_path / "again.png"
    with Image.open(sample_photo) as photo:
        ImageOps.mirror(photo.convert("RGB")).save(again)
    _viewer_drawn(page)  # the sample's face, to compare the next picture with
    _reconstruct(page, again)
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
