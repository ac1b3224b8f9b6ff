"""A recorded trajectory as one self-contained HTML page a person can click through.

:func:`render_replay` returns the page: the frames embedded as ``data:`` URLs,
every step's action, input, result and timings, and a step list. It loads
nothing from anywhere: a Content-Security-Policy allows only the page's own
style and script (by hash) and ``data:`` images, and every text from the
trajectory is HTML-escaped. Without scripts every step is shown one below the
other; with them one step at a time, chosen in the list or with the arrow keys.

No animated GIF or video is made: the maintained encoders (Pillow for GIF,
ffmpeg for MP4) would be an extra dependency for a worse view of the same
frames, as a GIF's 256 colours smear screenshots of text.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import UTC, datetime
from html import escape
from typing import Final

from .trajectory import Step, Trajectory, load_trajectory

__all__ = ["render_replay"]

_PNG_MAGIC: Final = b"\x89PNG\r\n\x1a\n"

_STYLE: Final = """
body{margin:0;font:14px/1.4 system-ui,sans-serif;color:#1d1d1f;background:#f5f5f7}
header{padding:12px 20px;background:#1d1d1f;color:#f5f5f7}
header h1{margin:0 0 6px;font-size:18px;white-space:pre-wrap;word-break:break-word}
header dl{margin:0;display:flex;flex-wrap:wrap;gap:4px 20px}
dl div{display:flex;gap:6px} dt{opacity:.7} dd{margin:0}
.layout{display:flex;align-items:flex-start}
nav{width:300px;flex:none;max-height:calc(100vh - 90px);overflow:auto;position:sticky;top:0}
nav ol{list-style:none;margin:0;padding:8px}
nav a{display:block;padding:4px 8px;border-radius:4px;color:inherit;text-decoration:none}
nav a:hover{background:#e3e3e8} nav a.current{background:#0a64d6;color:#fff}
nav .failed{color:#b3261e} nav a.current.failed{background:#b3261e;color:#fff}
main{flex:1;min-width:0;padding:8px 20px}
.step{background:#fff;border-radius:8px;padding:12px 16px;margin:0 0 16px}
.js .step{display:none} .js .step.current{display:block}
.step h2{margin:0 0 8px;font-size:16px}
pre{background:#f0f0f3;padding:8px;border-radius:4px;white-space:pre-wrap;word-break:break-word}
.error{color:#b3261e} .missing{color:#6e6e73;font-style:italic}
img{max-width:100%;height:auto;border:1px solid #d2d2d7}
.hint{color:#6e6e73;font-size:12px}
"""

_SCRIPT: Final = """
(function(){
  var steps=document.querySelectorAll('.step'),links=document.querySelectorAll('nav a');
  if(!steps.length)return;
  document.body.classList.add('js');
  var current=0;
  function show(i){
    if(i<0||i>=steps.length)return;
    steps[current].classList.remove('current');links[current].classList.remove('current');
    current=i;
    steps[i].classList.add('current');links[i].classList.add('current');
    links[i].scrollIntoView({block:'nearest'});
    history.replaceState(null,'','#step-'+i);
  }
  links.forEach(function(a,i){a.addEventListener('click',function(e){e.preventDefault();show(i);});});
  document.addEventListener('keydown',function(e){
    if(e.key==='ArrowDown'||e.key==='ArrowRight'||e.key==='j'){show(current+1);e.preventDefault();}
    if(e.key==='ArrowUp'||e.key==='ArrowLeft'||e.key==='k'){show(current-1);e.preventDefault();}
  });
  var m=/^#step-(\\d+)$/.exec(location.hash);
  var first=m?Math.min(parseInt(m[1],10),steps.length-1):0;
  steps[0].classList.add('current');links[0].classList.add('current');
  show(first);
})();
"""


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode()).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


_CSP: Final = (
    f"default-src 'none'; img-src data:; style-src {_csp_hash(_STYLE)}; "
    f"script-src {_csp_hash(_SCRIPT)}; base-uri 'none'; form-action 'none'"
)


def render_replay(trajectory: Trajectory | str | os.PathLike[str]) -> str:
    """The HTML page of ``trajectory`` (or of the trajectory recorded in that directory).

    Frames are read from the trajectory's directory; a frame that is missing or
    not a PNG is named as such in its step rather than failing the page.

    Raises:
        TrajectoryError: a directory that does not hold a readable trajectory.
    """
    if not isinstance(trajectory, Trajectory):
        trajectory = load_trajectory(trajectory)
    title = f"Trajectory: {trajectory.instruction}"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{escape(_short(title, 120))}</title>",
        f"<style>{_STYLE}</style></head><body>",
        _header(trajectory),
        '<div class="layout"><nav aria-label="steps"><ol>',
        *(_link(step) for step in trajectory.steps),
        "</ol></nav><main>",
    ]
    if not trajectory.steps:
        parts.append('<p class="missing">No steps were recorded.</p>')
    parts.extend(_section(trajectory, step) for step in trajectory.steps)
    parts.append(
        '<p class="hint">Arrow keys (or j and k) move between steps.</p>'
        f"</main></div><script>{_SCRIPT}</script></body></html>\n"
    )
    return "\n".join(parts)


def _header(trajectory: Trajectory) -> str:
    ended = trajectory.ended_at
    fields = [
        ("computer", trajectory.computer_id or "unknown"),
        ("outcome", trajectory.outcome or "incomplete (no end line: the recording stopped)"),
        ("started", _when(trajectory.started_at)),
        ("wall", "" if ended is None else _seconds(ended - trajectory.started_at)),
        ("steps", str(len(trajectory.steps))),
        ("model", _seconds(trajectory.model_seconds)),
        ("desktop", _seconds(trajectory.desktop_seconds)),
    ]
    if trajectory.error:
        fields.append(("error", trajectory.error))
    items = "".join(
        f"<div><dt>{escape(name)}</dt><dd>{escape(value)}</dd></div>"
        for name, value in fields
        if value
    )
    return f"<header><h1>{escape(trajectory.instruction)}</h1><dl>{items}</dl></header>"


def _link(step: Step) -> str:
    failed = "" if step.ok else ' class="failed"'
    mark = "ok" if step.ok else "failed"
    summary = _short(f"{step.action} {_compact(step)}", 60)
    return (
        f'<li><a href="#step-{step.index}" id="link-{step.index}"{failed}>'
        f"{step.index}. {escape(summary)} <small>({mark})</small></a></li>"
    )


def _section(trajectory: Trajectory, step: Step) -> str:
    rows = [
        ("model turn", str(step.turn)),
        ("model time", _seconds(step.model_seconds)),
        ("desktop time", _seconds(step.desktop_seconds)),
        ("started", _when(step.started_at)),
        ("result", "ok" if step.ok else "failed"),
    ]
    details = "".join(
        f"<div><dt>{escape(name)}</dt><dd>{escape(value)}</dd></div>" for name, value in rows
    )
    body = [
        f'<section class="step" id="step-{step.index}" aria-label="step {step.index}">',
        f"<h2>Step {step.index}: {escape(step.action)}</h2>",
        f"<dl>{details}</dl>",
        f"<pre>{escape(json.dumps(step.input, indent=2, ensure_ascii=False))}</pre>",
    ]
    if step.error is not None:
        body.append(f'<p class="error">Error: {escape(step.error)}</p>')
    if step.output is not None:
        body.append(f"<p>Output:</p><pre>{escape(step.output)}</pre>")
    body.append(_frame(trajectory, step))
    body.append("</section>")
    return "\n".join(body)


def _frame(trajectory: Trajectory, step: Step) -> str:
    path = trajectory.frame_path(step)
    if path is None:
        return '<p class="missing">No screenshot at this step.</p>'
    try:
        data = path.read_bytes()
    except OSError:
        return f'<p class="missing">Frame {escape(str(step.frame))} is missing.</p>'
    if not data.startswith(_PNG_MAGIC):
        return f'<p class="missing">Frame {escape(str(step.frame))} is not a PNG.</p>'
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="screen after step {step.index}" src="data:image/png;base64,{encoded}">'


def _compact(step: Step) -> str:
    return json.dumps(step.input, ensure_ascii=False, separators=(",", ":")) if step.input else ""


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def _when(epoch: float) -> str:
    try:
        moment = datetime.fromtimestamp(epoch, UTC)
    except (OverflowError, OSError, ValueError):
        return ""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _seconds(value: float) -> str:
    return f"{value:.3f} s"
