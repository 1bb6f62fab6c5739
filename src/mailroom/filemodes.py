"""The data directory is private: 0700 for it and every directory in it, 0600 for every file,
whatever the umask of the process (022 or 000 alike).

It holds every user's mail, the index and the web's cache (addresses, subjects, body text),
the queue and the TLS key. Files are created with mode 0600 where they are opened (messages,
queue entries); the helpers here make directories, files that other code creates (SQLite
databases: SQLite gives its journals the database file's mode), and put right what an older
version or another umask left behind.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

__all__ = [
    "DIRECTORY_MODE",
    "FILE_MODE",
    "private_dir",
    "private_file",
    "private_tree",
    "replace_private",
    "write_private",
]

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path | str) -> Path:
    """Make ``path`` a directory of mode 0700, and any parent it needs (as ``mkdir -p``, but
    each made 0700 whatever the umask). Parents that existed are left as they are; ``path``
    itself is set to 0700 if it existed with another mode. Something else at ``path`` (a file)
    raises NotADirectoryError, and is left as it was."""
    path = Path(path)
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            os.mkdir(directory, DIRECTORY_MODE)
    info = os.stat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
    if info.st_mode & 0o777 != DIRECTORY_MODE:
        os.chmod(path, DIRECTORY_MODE)
    for directory in missing[1:]:
        if _mode(directory) != DIRECTORY_MODE:
            os.chmod(directory, DIRECTORY_MODE)  # the umask took bits away
    return path


def private_file(path: Path | str) -> Path:
    """Make sure ``path`` exists with mode 0600 (created empty if missing), before a library
    that would create it with its own mode (SQLite: 0644) opens it."""
    path = Path(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, FILE_MODE)
    try:
        if _mode_fd(fd) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    return path


def write_private(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path``, a file of mode 0600 (whatever the umask, whatever its mode
    was before); a symbolic link at ``path`` is refused, not followed."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, FILE_MODE)
    with os.fdopen(fd, "wb") as file:
        if _mode_fd(fd) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
        file.write(data)


def replace_private(path: Path | str, data: bytes) -> None:
    """Put ``data`` in ``path`` at once (a private file beside it, written then renamed over
    it), so a reader sees the old content or the new, and the file is 0600 either way."""
    path = Path(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write_private(temporary, data)
    os.replace(temporary, path)


def private_tree(root: Path | str) -> None:
    """Put right the modes under ``root``: directories 0700, regular files 0600 (symbolic
    links are not followed). For a data directory an older version or another umask wrote."""
    root = Path(root)
    if _mode(root) != DIRECTORY_MODE:
        os.chmod(root, DIRECTORY_MODE)
    for folder, directories, files in os.walk(root):
        for name in directories:
            _fix(os.path.join(folder, name), DIRECTORY_MODE)
        for name in files:
            _fix(os.path.join(folder, name), FILE_MODE)


def _fix(path: str, mode: int) -> None:
    with contextlib.suppress(FileNotFoundError):  # a message delivered or deleted meanwhile
        info = os.lstat(path)
        if os.path.islink(path) or info.st_mode & 0o777 == mode:
            return
        os.chmod(path, mode)


def _mode(path: Path) -> int:
    return os.stat(path).st_mode & 0o777


def _mode_fd(fd: int) -> int:
    return os.fstat(fd).st_mode & 0o777
