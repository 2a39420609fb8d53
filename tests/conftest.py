"""Shared fixtures. PostgreSQL comes from the machine: ``TEND_TEST_POSTGRES_URL``."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """The URL of a real PostgreSQL for tests; skipped on a laptop, required in CI."""
    url = os.environ.get("TEND_TEST_POSTGRES_URL")
    if url:
        return url
    if os.environ.get("TEND_REQUIRE_POSTGRES") == "1":
        pytest.fail("TEND_REQUIRE_POSTGRES=1 but TEND_TEST_POSTGRES_URL is not set")
    pytest.skip(
        "PostgreSQL tests need TEND_TEST_POSTGRES_URL "
        "(e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test); .ci/run sets it"
    )
