"""Every file the READMEs point to is in the repository (a link, or a path named in backquotes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
READMES = [REPO / "README.md", REPO / "services" / "README.md", REPO / "bench" / "README.md"]


@pytest.mark.parametrize("readme", READMES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_points_at_a_file_in_the_repository(readme: Path) -> None:
    text = readme.read_text()
    targets = re.findall(r"\]\(([^)#\s]+)\)", text)
    targets += [t for t in re.findall(r"`((?:\.\./|docs/)[\w./-]+\.(?:md|proto))`", text)]
    missing = [t for t in targets if "://" not in t and not (readme.parent / t).resolve().is_file()]
    assert not missing, missing
    assert "../shared" not in text  # (outside the repository: a clone has no such folder)
