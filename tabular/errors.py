"""The one base class of every error safepce raises on bad input, and the checks they share.

Every such error is a :class:`ValueError` subclass of :class:`InputError` whose message names the
field and the expected range (``field: expected ...; got ...``), raised before any jitted or
solver code runs, so ``except tabular.InputError`` catches exactly the user's mistakes.
"""

from __future__ import annotations

import math
import numbers


class InputError(ValueError):
    """Bad input to safepce: the message names the field and the expected range."""


def positive_int(field: str, value, error: type[InputError] = InputError) -> int:
    """``value`` as an int, or ``error`` unless it is an integer >= 1 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise error(f"{field}: expected a positive integer; got {value!r}")
    return int(value)


def positive_number(field: str, value, error: type[InputError] = InputError) -> float:
    """``value`` as a float, or ``error`` unless it is a finite number > 0 (bools refused)."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or not value > 0):
        raise error(f"{field}: expected a positive finite number; got {value!r}")
    return float(value)


def finite_number(field: str, value, error: type[InputError] = InputError) -> float:
    """``value`` as a float, or ``error`` unless it is a finite real number (NaN/inf refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise error(f"{field}: expected a finite number; got {value!r}")
    return float(value)


#: the first bytes of every .npz (a zip archive's local file header)
NPZ_MAGIC = b"PK\x03\x04"


def npz_problem(path) -> str | None:
    """Why ``path`` cannot be an .npz archive (missing, a folder, another kind of file: named by
    its first bytes), or None. Loaders say this instead of what ``np.load`` would (a JSON file
    is reported by numpy as "pickled data")."""
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        return "does not exist"
    if path.is_dir():
        return "is a folder, not an .npz archive"
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not head.startswith(NPZ_MAGIC):
        return (f"is not an .npz archive (it begins with {head[:12]!r})" if head
                else "is empty, not an .npz archive")
    return None


class UnknownFamilyError(InputError):
    """A family name that is not registered, or parameters it does not take."""
