"""The PostgreSQL switch works: CI reaches a real server; laptops skip with a reason."""

from __future__ import annotations

from sqlalchemy import create_engine, text


def test_it_reaches_the_test_postgres_through_psycopg(postgres_url: str) -> None:
    engine = create_engine(postgres_url)
    try:
        with engine.connect() as connection:
            version = connection.execute(text("select current_setting('server_version_num')"))
            assert int(version.scalar_one()) >= 120000
    finally:
        engine.dispose()
