"""Files: every file graphc writes, written atomically (a temporary file renamed into place).

Stage: top. Imports `draw.render` (to turn a drawing into PDF or PNG bytes) and `draw.gallery`
(the frames' names). Every write goes to a temporary file beside its target, renamed into place,
so no half-written file is ever seen and a failure leaves an existing file as it was.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
import sys
from collections.abc import Iterator

from .draw import render
from .draw.gallery import frame_names
from .ir.errors import GraphcError


def write_atomic(path, data: str | bytes) -> str:
    """Write text or bytes to path via a temporary file in the same folder, renamed into place,
    so no half-written file is ever seen and a failure leaves an existing file as it was.

    The file gets the permissions any new file gets (0666 minus the umask), or keeps those of
    the file it replaces. Returns the path, as a string.
    """
    path = os.fspath(path)
    try:
        fd, tmp = _new_file_beside(path)
    except OSError as e:  # name the file the user asked for, not the temporary one
        raise OSError(e.errno, f"cannot write it: {e.strerror}", path) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise OSError(e.errno, f"cannot write it: {e.strerror}", path) from None
        raise
    return path


def write_output(path, data: str | bytes) -> str:
    """`write_atomic`, but "-" is standard output (text or bytes, flushed)."""
    if os.fspath(path) != "-":
        return write_atomic(path, data)
    if isinstance(data, str):
        sys.stdout.write(data)
        sys.stdout.flush()
    else:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    return "-"


def _new_file_beside(path: str) -> tuple[int, str]:
    """A new, empty temporary file in path's folder. Created with mode 0666 as `open` does, so
    the umask applies (tempfile's files are 0600, private to their owner)."""
    folder = os.path.dirname(os.path.abspath(path))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(folder, f".graphc-{secrets.token_hex(8)}.tmp")
        with contextlib.suppress(FileExistsError):  # a name already taken: draw another
            return os.open(tmp, flags, 0o666), tmp
    raise FileExistsError(f"no free temporary file name in {folder!r}")


PICTURE_FORMATS = ("svg", "pdf", "png", "dot")


def picture_format(path) -> str:
    """The format a file name's suffix names: svg, pdf, png, or dot (.dot and .gv)."""
    suffix = os.path.splitext(os.fspath(path))[1].lower().lstrip(".")
    if suffix == "gv":
        return "dot"
    if suffix not in PICTURE_FORMATS:
        raise GraphcError(
            f"cannot write a picture to {os.fspath(path)!r}: use a .svg, .pdf, .png or .dot file "
            "name, or name the format"
        )
    return suffix


def picture_bytes(picture, fmt: str, dpi: int | None = None) -> bytes:
    """A drawing (a graphviz Digraph, or SVG text for svg) in format `fmt`: svg, pdf, png, or
    dot (the Graphviz source). `dpi` sets a PNG's resolution (Graphviz's default: 96)."""
    if fmt not in PICTURE_FORMATS:
        known = ", ".join(PICTURE_FORMATS)
        raise GraphcError(f"unknown picture format {fmt!r}; use one of {known}")
    if dpi is not None and (not isinstance(dpi, int) or isinstance(dpi, bool) or dpi < 1):
        raise GraphcError(f"dpi={dpi!r}: give a whole number of dots per inch, such as 150")
    if isinstance(picture, str):
        if fmt != "svg":
            raise GraphcError(f"only SVG text is at hand; it cannot be written as {fmt}")
        return picture.encode("utf-8")
    if fmt == "dot":
        return picture.source.encode("utf-8")
    if dpi is not None and fmt == "png":
        picture = picture.copy()
        picture.graph_attr["dpi"] = str(dpi)
    return render.pipe(picture, fmt)


def write_picture(picture, path, fmt: str | None = None, dpi: int | None = None) -> str:
    """Write a drawing to `path` ("-": standard output), atomically, in format `fmt` (default:
    the one its suffix names: .svg, .pdf, .png, .dot or .gv); see `picture_bytes`.

    `picture` is a graphviz Digraph, or SVG text (for svg only). A failure leaves any existing
    file at `path` as it was.
    """
    path = os.fspath(path)
    if fmt is None:
        fmt = "svg" if path == "-" else picture_format(path)
    write_output(path, picture_bytes(picture, fmt, dpi))
    return path


def write_frames(frames: list[str], folder) -> list[str]:
    """Step frames as frame-01.svg, frame-02.svg, ... in `folder` (made if missing), each written
    atomically; frames of an earlier, longer run in that folder are removed."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    names = frame_names(len(frames))
    paths = [os.path.join(folder, name) for name in names]
    for svg, path in zip(frames, paths):
        write_atomic(path, svg)
    for old in sorted(os.listdir(folder)):
        if re.fullmatch(r"frame-\d+\.svg", old) and old not in names:
            os.unlink(os.path.join(folder, old))
    return paths


TEX_SPECIAL = "%#{}\\~$&^"  # characters that TeX does not read as themselves in a file name


def write_beamer(pictures: list, folder) -> list[str]:
    """Step frames as frame-01.pdf, ... in `folder` and frames.tex beside them: one beamer
    slide that shows frame k on overlay k (`\\input{<folder>/frames.tex}` in a presentation
    whose graphicspath finds the folder, or include the file names as written)."""
    folder = os.fspath(folder)
    special = sorted(set(folder) & set(TEX_SPECIAL))
    if special:
        raise GraphcError(
            f"the folder {folder!r} has {' '.join(special)} in its name, which TeX reads as "
            "commands in the snippet's file names; write the frames to a folder named without "
            f"any of {TEX_SPECIAL}"
        )
    os.makedirs(folder, exist_ok=True)
    names = [name.removesuffix(".svg") + ".pdf" for name in frame_names(len(pictures))]
    paths = [write_picture(p, os.path.join(folder, name)) for p, name in zip(pictures, names)]
    lines = ["% graphc steps --beamer: one slide, one overlay per frame", "\\begin{frame}"]
    lines += ["  \\centering"]
    for k, path in enumerate(paths, start=1):
        target = path.replace(os.sep, "/")
        lines.append(
            f"  \\only<{k}>{{\\includegraphics[width=\\linewidth,height=0.85\\textheight,"
            f"keepaspectratio]{{{target}}}}}%"
        )
    lines.append("\\end{frame}")
    tex = write_atomic(os.path.join(folder, "frames.tex"), "\n".join(lines) + "\n")
    return [*paths, tex]


def write_files(folder, files) -> Iterator[str]:
    """Write each `draw.gallery.File` into `folder` (made if missing) as soon as it comes, and
    yield its path: text atomically, a list of step frames as a folder of frames (`write_frames`).
    A path starting with ../ lies beside the folder (the gallery's page)."""
    folder = os.fspath(folder)
    os.makedirs(folder, exist_ok=True)
    for file in files:
        if file.path.startswith("../"):
            path = os.path.join(os.path.dirname(os.path.normpath(folder)), file.path[3:])
        else:
            path = os.path.join(folder, file.path)
        if isinstance(file.content, list):
            yield from write_frames(file.content, path)
        else:
            write_atomic(path, file.content)
            yield path
