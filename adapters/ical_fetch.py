"""Fetching an ical schedule's calendar by URL: http(s) only, a time limit, a size limit."""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import urlsplit

MAX_CALENDAR_BYTES = 5 * 1024 * 1024  # a year of a big team's rota is well under 1 MiB
FETCH_TIMEOUT_SECONDS = 10.0
USER_AGENT = "Tocsin calendar fetch"


class FetchError(Exception):
    """Why a calendar could not be fetched, in words for the schedule's owner."""


def check_calendar_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FetchError("The calendar URL must be an http or https URL")


def fetch_calendar(url: str, max_bytes: int = MAX_CALENDAR_BYTES, timeout: float = FETCH_TIMEOUT_SECONDS) -> bytes:
    """The calendar's bytes; ``FetchError`` when it is unreachable, answers an error, or is
    larger than ``max_bytes`` (read no further than that)."""
    check_calendar_url(url)
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "text/calendar, */*"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            declared = response.headers.get("Content-Length")
            if declared and declared.isdigit() and int(declared) > max_bytes:
                raise FetchError(f"The calendar is larger than {max_bytes} bytes")
            body = response.read(max_bytes + 1)
    except FetchError:
        raise
    except urllib.error.HTTPError as error:
        raise FetchError(f"The calendar server answered {error.code} {error.reason}") from error
    except urllib.error.URLError as error:
        raise FetchError(f"The calendar server could not be reached: {error.reason}") from error
    except (OSError, ValueError) as error:  # timeouts, resets, malformed answers
        raise FetchError(f"The calendar could not be fetched: {error}") from error
    if len(body) > max_bytes:
        raise FetchError(f"The calendar is larger than {max_bytes} bytes")
    return body
