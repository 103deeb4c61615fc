"""The package metadata that PyPI and pip show: URLs, classifiers and a license pip 23 reads."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_license_is_a_table_every_pip_reads_and_its_classifier_agrees() -> None:
    # A bare string is a PEP 639 expression (Metadata 2.4 License-Expression): pip < 24 and
    # older tools show no license at all. {text = ...} writes the classic License field.
    assert PROJECT["license"] == {"text": "MIT"}
    assert "License :: OSI Approved :: MIT License" in PROJECT["classifiers"]


def test_the_project_has_urls_classifiers_and_keywords() -> None:
    assert {"Homepage", "Documentation", "Repository", "Issues", "Changelog"} <= set(
        PROJECT["urls"]
    )
    assert all(url.startswith("https://") for url in PROJECT["urls"].values())
    classifiers = PROJECT["classifiers"]
    for expected in (
        "Framework :: AsyncIO",
        "Typing :: Typed",
        "Programming Language :: Python :: 3.11",
    ):
        assert expected in classifiers
    assert len(set(classifiers)) == len(classifiers)
    assert PROJECT["keywords"]


def test_every_extra_the_docs_name_exists() -> None:
    extras = set(PROJECT["optional-dependencies"])
    assert {"redis", "sns", "cli", "examples", "bench"} <= extras
