"""Ritual files for tests: parsed from text as the service parses them."""

from __future__ import annotations

from datetime import UTC, datetime

from config.loader import parse_ritual_file
from config.model import RitualFile


def ritual_file(text: str, today: datetime | None = None) -> RitualFile:
    return parse_ritual_file(
        text, name="test.toml", today=today or datetime(2026, 1, 1, tzinfo=UTC)
    ).file
