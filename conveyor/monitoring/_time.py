"""Durations (``1h``, ``30m``, ``7d``), instants and monitor windows, all in UTC.

A window given only by its length ends at the last multiple of that length since the
epoch (``1h`` run at 10:00:02 covers 09:00-10:00): a scheduled run that fires late, or a
re-run, computes the same window, so its stored points are replaced, not duplicated.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from conveyor.errors import InvalidInput

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")


def parse_duration(text: str | timedelta) -> timedelta:
    """``"90s"``, ``"30m"``, ``"1h"``, ``"7d"``, ``"2w"`` (or a timedelta) as a positive timedelta.

    Raises:
        InvalidInput: naming the text and the accepted units.
    """
    if isinstance(text, timedelta):
        duration = text
    else:
        match = _DURATION.match(str(text))
        if match is None:
            raise InvalidInput(
                f"Invalid duration {text!r}: write a number and a unit, s m h d or w (e.g. 1h, 30m, 7d)"
            )
        duration = timedelta(seconds=float(match[1]) * _UNITS[match[2]])
    if duration.total_seconds() <= 0:
        raise InvalidInput(f"A duration must be positive, got {text!r}")
    return duration


def parse_instant(text: str | datetime | None) -> datetime | None:
    """An ISO 8601 time (``2026-03-01T10:00Z``) as an aware UTC datetime; naive means UTC."""
    if text is None or text == "":
        return None
    if isinstance(text, datetime):
        moment = text
    else:
        try:
            moment = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"Invalid time {text!r}: use ISO 8601, e.g. 2026-03-01T10:00Z") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def to_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def window_bounds(
    window: str | timedelta, end: str | datetime | None = None, *, now: datetime | None = None
) -> tuple[datetime, datetime]:
    """``(start, end)`` of a window: ``end`` as given, else aligned down to the window's length."""
    length = parse_duration(window)
    chosen = parse_instant(end)
    if chosen is None:
        current = now or datetime.now(UTC)
        step = int(length.total_seconds() * 1000)
        chosen = from_ms(to_ms(current) // step * step)
    return chosen - length, chosen
