"""A Tk window that reports its input as JSON lines on stdout: the tests' input oracle.

Run on the display under test (``DISPLAY``). The window is 400x300 at
(100, 100): a focused entry on top, a canvas below. Printed events:
``ready``; ``text`` (the entry's text after each change); ``press``,
``release`` (buttons 1-5, wheel included), ``double`` and ``drag`` on the
canvas, in root coordinates.
"""

from __future__ import annotations

import json
import sys
import tkinter as tk
from collections.abc import Callable
from typing import Any


def say(**event: Any) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def reporter(kind: str, button: int) -> Callable[[tk.Event[tk.Misc]], None]:
    return lambda e: say(event=kind, button=button, x=e.x_root, y=e.y_root)


def main() -> None:
    root = tk.Tk()
    root.geometry("400x300+100+100")
    text = tk.StringVar()
    entry = tk.Entry(root, textvariable=text)
    entry.pack(fill="x")
    canvas = tk.Canvas(root, background="white", highlightthickness=0)
    canvas.pack(fill="both", expand=True)
    text.trace_add("write", lambda *_: say(event="text", text=text.get()))
    for button in range(1, 6):
        canvas.bind(f"<ButtonPress-{button}>", reporter("press", button))
        canvas.bind(f"<ButtonRelease-{button}>", reporter("release", button))
    canvas.bind("<Double-Button-1>", lambda e: say(event="double", x=e.x_root, y=e.y_root))
    canvas.bind("<B1-Motion>", lambda e: say(event="drag", x=e.x_root, y=e.y_root))

    canvas.wait_visibility()  # mapped and viewable: input can reach it
    entry.focus_force()  # no window manager: take the keyboard focus ourselves
    root.update()
    say(event="ready", focus=str(root.focus_get()))
    root.mainloop()


if __name__ == "__main__":
    main()
