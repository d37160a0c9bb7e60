"""The docs cannot drift from the code: the preset table is generated, the README stays a
newcomer's page."""

from pathlib import Path

from dip.presets import markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"
README = DOCS.parent / "README.md"


def test_the_preset_table_is_the_generated_one():
    assert markdown() in (DOCS / "presets.md").read_text(), "run: python docs/make_gallery.py --presets"


def test_readme_is_short_and_links_what_exists():
    text = README.read_text()
    assert len(text.encode()) < 10_000
    for link in (
        "docs/tasks.md",
        "docs/python.md",
        "docs/custom-problem.md",
        "docs/batches.md",
        "docs/gpu.md",
        "docs/design.md",
        "docs/gallery.md",
        "docs/presets.md",
        "benchmarks/README.md",
    ):
        assert link in text and (README.parent / link).is_file(), link
