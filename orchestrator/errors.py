"""One exception tree. The CLI maps each branch to an exit code (DESIGN §3)."""

from __future__ import annotations


class PodctlError(Exception):
    """Base of every error podctl reports to a user (no traceback)."""

    exit_code = 1


class UsageError(PodctlError):
    """Bad input: nothing was changed. Exit 3."""

    exit_code = 3


class ManifestError(UsageError):
    """A manifest is invalid. The message names file, document and field path."""

    def __init__(self, source: str, path: str, message: str):
        self.source = source
        self.path = path
        self.message = message
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: {message}")


class InventoryError(UsageError):
    """An inventory is invalid. The message names file, host and field."""

    def __init__(self, source: str, host: str | None, field: str | None, message: str):
        self.source = source
        self.host = host
        self.field = field
        parts = [source]
        if host:
            parts.append(f"host {host!r}")
        if field:
            parts.append(f"field {field!r}")
        super().__init__(": ".join(parts) + f": {message}")


class ImageError(PodctlError):
    """An image cannot be imported, found or unpacked."""


class StoreError(PodctlError):
    """The SQLite state store is unusable."""


class LockHeld(PodctlError):
    """Another run holds the lock. Exit 4."""

    exit_code = 4


class TransportError(PodctlError):
    """SSH failed: connect, auth, host key, or a command's deadline. Exit 2."""

    exit_code = 2


class HostKeyError(TransportError):
    """The host's key is unknown or does not match known_hosts; nothing was sent."""


class LabError(PodctlError):
    """The local lab could not be built or torn down."""
