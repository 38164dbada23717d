"""What the code tells a reader must be there for the reader: no reference to a file outside the repository."""
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_code_or_doc_cites_a_file_the_repository_does_not_have():
    """DESIGN.md and STYLE.md are the team's notes, not part of a user's clone: code, tests and docs cite the
    README or docs/ instead."""
    files = [p for pattern in ("masklab/*.py", "pages/*.py", "tests/*.py", "tools/*.py", "*.py", "*.md", "docs/*.md")
             for p in ROOT.glob(pattern) if p.name != "test_docs.py"]
    assert len(files) > 30
    cited = [f"{p.relative_to(ROOT)}: {name}" for p in files for name in ("DESIGN.md", "STYLE.md")
             if name in p.read_text(encoding="utf-8")]
    assert cited == []
