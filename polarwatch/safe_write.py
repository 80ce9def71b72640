"""Writing a file the user named (``report -o``, ``events --file``) without breaking what is there.

:func:`output_target` checks a path before any work is done: an empty path, a path ending in
a slash, a directory, a device, a FIFO or a socket is refused with one line (as root,
``report -o /dev/null`` once replaced the machine's ``/dev/null`` with a regular file). A
symlink is followed: the file it points to is written, the link stays a link.
:func:`output_ready` also asks that the file's directory exists and takes a new file (``report
-o /proc/version`` failed only after the report was built, naming a temporary file).

:func:`write_text` (and :func:`write_bytes`) writes atomically **beside the resolved target**: a temporary file in the
target's directory, then ``os.replace`` (readers never see half a file; a failure leaves the
target as it was and no temporary file behind). The new file keeps the mode of the one it
replaces (a new file gets the default mode, 0666 less the umask).

:func:`refuse_input` refuses an output that is the input file, by any path or link;
:func:`check_new_output` also refuses one whose directory does not exist (``label``, ``detect``).

:func:`writing` names what was being written in an error that names no file (a full disk:
``write``, ``flush`` and ``close`` raise ``ENOSPC`` without a file name), so the CLI says it in
one line instead of a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from polarwatch.errors import PolarwatchError

__all__ = ["STDOUT", "OutputPathError", "check_new_output", "file_kind", "output_ready",
           "output_target", "refuse_input", "write_bytes", "write_text", "writing"]
STDOUT = "standard output"  # what :func:`writing` names for ``sys.stdout``

_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISSOCK, "a socket"))


class OutputPathError(PolarwatchError):
    """An output path that cannot be written as a regular file; the message says why."""


def file_kind(mode: int) -> str | None:
    """What an ``st_mode`` is when it is not a regular file ("a FIFO (named pipe)"), else None
    (a reader refuses those too: a FIFO blocks it until a writer comes)."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


LINK_LOOP = "a symbolic link in a loop (it leads back to itself)"


def broken_link(path: Path) -> str | None:
    """What `path` is when it is a symbolic link that leads to no file (``Path.exists`` is
    False for both: a reader would take it for a file not made yet), else None."""
    if not path.is_symlink():
        return None
    try:
        path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return LINK_LOOP
        return f"a symbolic link to {os.readlink(path)!r}, which does not exist"
    return None


def output_target(path: str | Path, option: str = "-o") -> Path:
    """The regular file that writing ``path`` would replace: ``path`` with its symlinks
    resolved. Raises :class:`OutputPathError` (naming ``option``) for an empty path, a path
    ending in a slash, a symlink loop, or an existing target that is not a regular file."""
    text = os.fspath(path)
    if not text.strip():
        raise OutputPathError(f"{option} is empty; name the file to write, e.g. {option} "
                              f"report.html")
    if text.endswith(os.sep):
        raise OutputPathError(f"{option} {text}: ends in '{os.sep}', a directory; name a file "
                              f"in it, e.g. {option} {text}report.html")
    target = Path(os.path.realpath(text))
    try:
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        return target  # a new file (a dangling link: the file it names)
    except OSError as exc:  # a symlink loop, a path through a file
        raise OutputPathError(f"{option} {text}: {exc.strerror or exc}; fix the path") from None
    kind = file_kind(mode)
    if kind is not None:
        via = f" (the link resolves to {target})" if str(target) != os.path.abspath(text) else ""
        raise OutputPathError(f"{option} {text} is {kind}{via}, not a regular file: it is "
                              f"never replaced; name a file to write")
    return target


def output_ready(path: str | Path, option: str = "-o") -> Path:
    """:func:`output_target`, and its directory exists (a mistyped directory is not created)
    and takes a new file: a trial temporary file is made and removed there, before any work."""
    target = output_target(path, option)
    parent = target.parent
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        raise OutputPathError(f"{option} {os.fspath(path)}: directory {parent} {what}; create "
                              f"it first (mkdir -p {parent}) or fix the path")
    trial, fd = _temp_beside(target, os.fspath(path), option)
    os.close(fd)
    trial.unlink(missing_ok=True)
    return target


def _temp_beside(target: Path, named: str, option: str) -> tuple[Path, int]:
    """A new temporary file beside ``target`` and its open descriptor; a directory that takes
    no new file (read-only, /proc, no permission) is an :class:`OutputPathError`."""
    tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    try:
        return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise OutputPathError(f"{option} {named}: no file can be written in {target.parent} "
                              f"({exc.strerror or exc}); name a file in a directory you can "
                              f"write") from None


def write_text(path: str | Path, text: str, option: str = "-o") -> Path:
    """Write ``text`` (UTF-8) to :func:`output_target` of ``path`` atomically; missing parent
    directories are created. Returns the file written (the link's target for a symlink)."""
    return write_bytes(path, text.encode("utf-8"), option)


def write_bytes(path: str | Path, data: bytes, option: str = "-o") -> Path:
    """:func:`write_text` for bytes (a head file of ``train``)."""
    target = output_target(path, option)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = _temp_beside(target, os.fspath(path), option)
    try:
        with writing(target), os.fdopen(fd, "wb") as fh:
            fh.write(data)
        with contextlib.suppress(FileNotFoundError):  # a new file keeps the default mode
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        output_target(target, option)  # a directory or FIFO put there meanwhile is not replaced
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def check_new_output(src: str | Path | None, output: str | Path, what: str) -> None:
    """Refuse ``output`` before anything is read when it is the input file ``src`` (None:
    standard input; :func:`refuse_input`) or its directory does not exist (a mistyped path
    creates no directories)."""
    if src is not None:
        refuse_input(src, output, what)
    parent = Path(output).parent
    if parent.exists() and not parent.is_dir():
        raise OutputPathError(f"-o {output}: {parent} is a file, not a directory; fix the path")
    if not parent.exists():
        raise OutputPathError(f"-o {output}: directory {parent} does not exist; create it "
                              f"first (mkdir -p {parent}) or fix the path")


def refuse_input(src: str | Path, output: str | Path, what: str) -> None:
    """Refuse ``output`` when it is the file ``src`` (by any path or link): ``what`` says what
    would be overwritten (``"the detector's output would replace the series"``)."""
    src, output = Path(src), Path(output)
    if output.exists() and src.exists() and os.path.samefile(src, output):
        raise OutputPathError(f"-o {output} is the input file {src}: {what}; write to "
                              f"another file")


@contextlib.contextmanager
def writing(what: str | Path) -> Iterator[None]:
    """Give an :class:`OSError` raised inside that names no file (``ENOSPC`` from a write, a
    flush or a close) ``what`` as its file name: the path written, or :data:`STDOUT`. A broken
    pipe is left as it is (``polarwatch schema | head`` ends quietly)."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as exc:
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, exc.strerror or str(exc), os.fspath(what)) from exc
