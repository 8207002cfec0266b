"""Resource limits for risky code: ``fork.Limits``, checked in the parent, applied in the child.

Each limit is a POSIX rlimit set (soft and hard) in the child just before the
function runs:

================  =============  =============================================
``Limits`` field  rlimit         what exceeding it does
================  =============  =============================================
``memory``        RLIMIT_AS      ``MemoryError`` in Python code (re-raised in
                                 the parent); native code may crash instead
``cpu_seconds``   RLIMIT_CPU     SIGXCPU, then SIGKILL a second later
``open_files``    RLIMIT_NOFILE  ``OSError(EMFILE)``
``processes``     RLIMIT_NPROC   ``OSError(EAGAIN)`` on fork; per user, and not
                                 enforced for root
``file_size``     RLIMIT_FSIZE   ``OSError(EFBIG)`` (Python ignores SIGXFSZ)
================  =============  =============================================
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Tuple, Union

    Size = Union[int, str, None]
    Applied = Tuple[Tuple[str, int], ...]

_FIELDS = {
    "memory": "RLIMIT_AS",
    "cpu_seconds": "RLIMIT_CPU",
    "open_files": "RLIMIT_NOFILE",
    "processes": "RLIMIT_NPROC",
    "file_size": "RLIMIT_FSIZE",
}
_SIZED = ("memory", "file_size")
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_LARGEST = (1 << 63) - 1  # rlim_t is 64 bits; RLIM_INFINITY takes the top of the range
_SIZE = r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?\s*"


class Limits:
    """Resource limits applied in a child before its function runs.

    Args:
        memory: address-space bytes; an int or a string like ``"512M"``, ``"2GiB"``.
        cpu_seconds: CPU time in whole seconds.
        open_files: the highest file descriptor count.
        processes: processes for this user (not enforced for root).
        file_size: the largest file the child may write; int or ``"10M"``.

    Limits are POSIX rlimits; every POSIX system has them, though Linux is
    where they are tested. ``None`` leaves a limit as inherited.
    """

    __slots__ = tuple(_FIELDS)

    def __init__(
        self,
        memory: Size = None,
        cpu_seconds: int | None = None,
        open_files: int | None = None,
        processes: int | None = None,
        file_size: Size = None,
    ) -> None:
        given = {
            "memory": memory,
            "cpu_seconds": cpu_seconds,
            "open_files": open_files,
            "processes": processes,
            "file_size": file_size,
        }
        for field, value in given.items():
            object.__setattr__(self, field, _parse(field, value))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Limits are immutable; make a new fork.Limits(...)")

    def __reduce__(self) -> tuple[type[Limits], tuple[int | None, ...]]:
        return (Limits, tuple(getattr(self, field) for field in _FIELDS))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Limits) and self.__reduce__() == other.__reduce__()

    def __hash__(self) -> int:
        return hash(self.__reduce__()[1])

    def __repr__(self) -> str:
        set_fields = (f"{f}={getattr(self, f)!r}" for f in _FIELDS if getattr(self, f) is not None)
        return f"Limits({', '.join(set_fields)})"

    def _to_apply(self) -> Applied:
        """(rlimit name, value) pairs, checked against what this process may grant."""
        import resource

        pairs = []
        for field, rlimit in _FIELDS.items():
            value = getattr(self, field)
            if value is None:
                continue
            _, hard = resource.getrlimit(getattr(resource, rlimit))
            if hard != resource.RLIM_INFINITY and value > hard:
                raise ValueError(
                    f"Limits({field}={value}) is above this process's hard limit "
                    f"({hard}); a child cannot be given more than its parent has"
                )
            pairs.append((rlimit, value))
        return tuple(pairs)


def _parse(field: str, value: object) -> int | None:
    if value is None:
        return None
    if field in _SIZED:
        return parse_size(f"Limits({field}=...)", value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"Limits({field}={value!r}): expected an int")
    if value <= 0:
        raise ValueError(f"Limits({field}={value}): must be positive; use None for no limit")
    if value > _LARGEST:
        raise ValueError(
            f"Limits({field}={value}): too large for an rlimit (at most {_LARGEST}); "
            "use None for no limit"
        )
    return value


def parse_size(label: str, value: object) -> int:
    """A size in bytes, from an int or a string like ``"512M"``; ``label`` names it in errors.

    Raises:
        TypeError: neither an int nor a string.
        ValueError: a string that is no size, a size that is not positive or is
            too large for an rlimit.
    """
    if isinstance(value, str):
        import re

        match = re.fullmatch(_SIZE, value, re.IGNORECASE)
        if match is None:
            raise ValueError(
                f"{label}: {value!r} is no size; write a number with an optional "
                "unit K, M, G or T (powers of 1024), e.g. '512M' or '2GiB'"
            )
        number, unit = match.groups()
        value = int(float(number) * _UNITS[unit.upper()])
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{label}: expected an int or a size string like '512M', not {value!r}")
    if value <= 0:
        raise ValueError(f"{label}: {value} must be positive; use None for no limit")
    if value > _LARGEST:
        raise ValueError(f"{label}: {value} is too large (at most {_LARGEST}); use None")
    return value


def describe_size(size: int) -> str:
    """``16777216`` as ``"16M"``: the largest unit that divides it, as ``Limits`` takes it."""
    for unit in "TGMK":
        if size % _UNITS[unit] == 0:
            return f"{size // _UNITS[unit]}{unit}"
    return str(size)


def apply(pairs: Applied) -> None:
    """Set each (rlimit, value) as both soft and hard limit (CPU: hard one second later)."""
    if not pairs:
        return
    import resource

    for rlimit, value in pairs:
        which = getattr(resource, rlimit)
        hard = value
        if rlimit == "RLIMIT_CPU":  # SIGXCPU at the soft limit, SIGKILL a second later
            _, allowed = resource.getrlimit(which)
            hard = value + 1 if allowed == resource.RLIM_INFINITY else min(value + 1, allowed)
        resource.setrlimit(which, (value, hard))
