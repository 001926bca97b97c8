"""schema.graphql at the repository root is printed from the code."""

from pathlib import Path

from schema.root import make_schema
from settings import Settings

SCHEMA_FILE = Path(__file__).parents[2] / "schema.graphql"


def test_schema_file_matches_the_code() -> None:
    printed = make_schema(Settings()).as_str() + "\n"
    assert SCHEMA_FILE.read_text() == printed, (
        "schema.graphql is stale: run `quanyi print-schema > schema.graphql`"
    )
