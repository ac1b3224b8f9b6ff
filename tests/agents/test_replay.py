"""The replay page: every step and frame, nothing loaded from elsewhere, hostile text inert."""

from __future__ import annotations

import base64
from html.parser import HTMLParser
from pathlib import Path

from orgo_async import TrajectoryRecorder, load_trajectory, render_replay
from orgo_async.protocol.png import encode_png

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>&amp;"\''


def frame(shade: int) -> bytes:
    return encode_png(3, 2, bytes([shade, shade, 255 - shade]) * 6)


class Page(HTMLParser):
    """The page's elements, attributes and text, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        (self.scripts if self._in_script else self.text).append(data)

    def all(self, tag: str) -> list[dict[str, str | None]]:
        return [attrs for name, attrs in self.tags if name == tag]


async def record(directory: Path) -> None:
    async with TrajectoryRecorder(directory, instruction=f"do {HOSTILE}", computer="c-1") as rec:
        rec.model_turn(0.5)
        await rec.action("screenshot", screenshot_png=frame(1), desktop_seconds=0.01)
        await rec.action(HOSTILE, {"text": HOSTILE}, error=HOSTILE, output=HOSTILE)
        await rec.action("zoom", {"region": [0, 0, 1, 1]}, screenshot_png=frame(2))
        await rec.action("wait", {"duration": 1})


async def test_every_step_and_frame_is_on_the_page(tmp_path: Path) -> None:
    await record(tmp_path)
    page = Page()
    page.feed(render_replay(tmp_path))

    sections = [a for a in page.all("section") if a.get("class") == "step"]
    assert [a["id"] for a in sections] == ["step-0", "step-1", "step-2", "step-3"]
    links = [a["href"] for a in page.all("a")]
    assert links == ["#step-0", "#step-1", "#step-2", "#step-3"]
    images = [a["src"] for a in page.all("img")]
    assert [base64.b64decode((src or "").split(",", 1)[1]) for src in images] == [
        frame(1),
        frame(2),
    ]
    assert all((src or "").startswith("data:image/png;base64,") for src in images)
    text = " ".join(page.text)
    for needed in ("screenshot", "zoom", "wait", "c-1", "completed", "0.500 s", "0.010 s"):
        assert needed in text, needed


async def test_hostile_text_stays_text(tmp_path: Path) -> None:
    await record(tmp_path)
    html = render_replay(tmp_path)
    page = Page()
    page.feed(html)

    # The one script is the page's own; no element came from the trajectory's text.
    assert len(page.all("script")) == 1 and "alert" not in "".join(page.scripts)
    assert all("onerror" not in attrs for _, attrs in page.tags)
    assert [a["src"] for a in page.all("img")][0] != "x"
    assert "<script>alert" not in html
    # ...and it reads as the model wrote it: action name, input, error, output, title.
    text = "".join(page.text)
    assert text.count(HOSTILE) >= 4
    title = [t for t in page.text if t.startswith("Trajectory: do")]
    assert title and HOSTILE[:20] in title[0]


async def test_the_page_loads_nothing_from_elsewhere(tmp_path: Path) -> None:
    await record(tmp_path)
    page = Page()
    page.feed(render_replay(tmp_path))
    policy = [a for a in page.all("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert policy and "default-src 'none'" in (policy[0]["content"] or "")
    for tag, attrs in page.tags:
        for name in ("src", "href"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("data:image/png;base64,", "#step-")), (tag, value)
    assert not page.all("link")


async def test_missing_frames_and_crashed_runs_still_render(tmp_path: Path) -> None:
    await record(tmp_path)
    (tmp_path / "frames" / "0002.png").unlink()
    jsonl = tmp_path / "trajectory.jsonl"
    jsonl.write_text("".join(jsonl.read_text().splitlines(keepends=True)[:-1]))  # no end line

    trajectory = load_trajectory(tmp_path)
    page = Page()
    page.feed(render_replay(trajectory))
    text = " ".join(page.text)
    assert "frames/0002.png is missing" in text
    assert "incomplete" in text
    assert len(page.all("img")) == 1
