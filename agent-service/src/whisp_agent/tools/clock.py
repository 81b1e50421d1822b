"""`current_time`: the date and time now, in a time zone the model may name."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field

from whisp_agent.tools.base import ToolDeps, ToolFailure, ToolSpec


class ClockArgs(BaseModel):
    timezone: str = Field(default="UTC", description="IANA time zone, e.g. Europe/Berlin.")


async def current_time(_deps: ToolDeps, args: ClockArgs) -> str:
    try:
        zone = UTC if args.timezone.upper() == "UTC" else ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ToolFailure(f"unknown time zone {args.timezone!r}; use an IANA name") from exc
    now = datetime.now(zone)
    return f"{now:%A %d %B %Y, %H:%M:%S} ({args.timezone}, ISO {now.isoformat(timespec='seconds')})"


TOOL = ToolSpec(
    name="current_time",
    description="The current date, weekday and time; optionally in a given IANA time zone.",
    args=ClockArgs,
    run=current_time,
)
