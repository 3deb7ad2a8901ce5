"""kiln's exception hierarchy. Every C++ ``kiln::Error`` becomes one of these, with the C++ message (which names the
file, node, op or tensor involved) and ``.code``, the name of its ``kiln::ErrorCode`` (e.g. ``"kUnsupported"``)."""


class KilnError(Exception):
    """Base class of every kiln error. ``code`` is the C++ ErrorCode name, e.g. ``"kInvalidModel"``."""

    code = "kInternal"

    def __init__(self, message: str = "", code: "str | None" = None):
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""

    def __str__(self) -> str:
        return self.message


class InvalidArgumentError(KilnError, ValueError):
    """A bad argument: wrong input name, shape or dtype at run time, bad option value (kInvalidArgument)."""

    code = "kInvalidArgument"


class FileError(KilnError, OSError):
    """A missing, unreadable or unwritable file (kIoError)."""

    code = "kIoError"


class InvalidModelError(KilnError):
    """A malformed or truncated ONNX model, or a graph that fails verification (kInvalidModel)."""

    code = "kInvalidModel"


class InvalidPlanError(KilnError):
    """A corrupted engine plan, e.g. a checksum mismatch (kInvalidPlan)."""

    code = "kInvalidPlan"


class VersionMismatchError(KilnError):
    """A plan written by another kiln version or plan format version: rebuild it (kVersionMismatch)."""

    code = "kVersionMismatch"


class UnsupportedError(KilnError):
    """Something kiln does not support (yet): an op, a dtype, a precision, a device (kUnsupported)."""

    code = "kUnsupported"


class OutOfMemoryError(KilnError, MemoryError):
    """An allocation failed, or a build exceeds BuilderConfig.memory_limit (kOutOfMemory)."""

    code = "kOutOfMemory"


class InternalError(KilnError):
    """A bug in kiln: please report it with the message (kInternal)."""

    code = "kInternal"


_BY_CODE = {cls.code: cls for cls in (InvalidArgumentError, FileError, InvalidModelError, InvalidPlanError,
                                      VersionMismatchError, UnsupportedError, OutOfMemoryError, InternalError)}


def error_class(code: str) -> type:
    """The exception class for a C++ ErrorCode name (used by the extension to raise kiln errors)."""
    return _BY_CODE.get(code, KilnError)
