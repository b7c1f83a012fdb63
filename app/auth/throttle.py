"""Login throttling: failed guesses counted in memory, in moving windows, before the password is checked.

The server is one process (DESIGN.md), so its counters live in this process. Each attempt counts
first, under one lock, against every key it names (username and address together, the username
alone, the address alone), and is refused at once when any of them is full; only then is the
password checked, and a right password takes its count back. So parallel wrong guesses never get
past a limit (a check before and a count after lets every guess in flight through), and a
successful login never counts. A refused attempt counts nowhere: waiting out the window is enough.

Counters start empty when the server restarts.
"""

import re
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from ..errors import InvalidInput

_UNITS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_RATE = re.compile(r"\s*(\d+)\s*(?:per|/)\s*(\d+)?\s*(second|minute|hour|day)s?\s*", re.IGNORECASE)
# Keys kept before a sweep drops those whose window has passed (a guesser spraying names).
_SWEEP_AT = 10_000


@dataclass(frozen=True)
class Rate:
    """At most `count` attempts in any `seconds`-long window."""

    count: int
    seconds: float
    text: str

    def __str__(self) -> str:
        return self.text


def parse_rate(text: str, setting: str = "the limit") -> Rate:
    """Parse "5 per minute", "5/minute" or "50 per 10 minutes"; InvalidInput names the setting when it is not one."""
    m = _RATE.fullmatch(str(text))
    if not m or int(m.group(1)) < 1 or (m.group(2) is not None and int(m.group(2)) < 1):
        raise InvalidInput(
            f"{setting} is {text!r}: write it as '<count> per <unit>' (e.g. '5 per minute',"
            " '50 per 10 minutes'; units second, minute, hour, day)"
        )
    n, span, unit = int(m.group(1)), int(m.group(2) or 1), m.group(3).lower()
    return Rate(n, span * _UNITS[unit], str(text).strip())


@dataclass
class Limit:
    """One counter an attempt counts against: its key, its rate and what to tell a refused user."""

    key: str
    rate: Rate
    message: str


@dataclass
class Attempt:
    """The outcome of Throttle.attempt: counted (cancel() takes it back) or refused (which limit, how long)."""

    throttle: "Throttle"
    counted: list[tuple[Limit, float]] = field(default_factory=list)
    refused: Limit | None = None
    retry_after: int = 0

    def cancel(self) -> None:
        """Take the attempt's counts back (a right password is not a failure)."""
        self.throttle._uncount(self.counted)
        self.counted = []


class Throttle:
    """Moving-window counters per key, shared by the threads of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> (window seconds, times of the attempts counted in the window, oldest first)
        self._hits: dict[str, tuple[float, deque[float]]] = {}

    def attempt(self, limits: list[Limit]) -> Attempt:
        """Count one attempt against every limit, or against none when one of them is full."""
        now = time.monotonic()
        with self._lock:
            if len(self._hits) > _SWEEP_AT:
                self._sweep(now)
            for lim in limits:
                hits = self._window(lim, now)
                if len(hits) >= lim.rate.count:
                    wait = hits[0] + lim.rate.seconds - now
                    return Attempt(self, refused=lim, retry_after=max(1, int(wait + 0.999)))
            for lim in limits:
                self._hits.setdefault(lim.key, (lim.rate.seconds, deque()))[1].append(now)
        return Attempt(self, counted=[(lim, now) for lim in limits])

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self._hits.clear()

    def _window(self, lim: Limit, now: float) -> deque[float]:
        entry = self._hits.get(lim.key)
        if entry is None:
            return deque()
        hits = entry[1]
        while hits and hits[0] <= now - lim.rate.seconds:
            hits.popleft()
        return hits

    def _uncount(self, counted: list[tuple[Limit, float]]) -> None:
        with self._lock:
            for lim, at in counted:
                entry = self._hits.get(lim.key)
                hits = entry[1] if entry else None
                if hits is not None and at in hits:
                    hits.remove(at)
                    if not hits:
                        del self._hits[lim.key]

    def _sweep(self, now: float) -> None:
        for key in [k for k, (secs, hits) in self._hits.items() if not hits or hits[-1] <= now - secs]:
            del self._hits[key]
