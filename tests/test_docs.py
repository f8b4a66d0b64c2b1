"""The documentation: every Python code block of the site's pages (docs/*.md)
runs as written, page by page (blocks of one page share a namespace, as a
reader's session would); every relative link of README.md and of the pages
names a file of the repository (and, for a page, one of its headings); every
public name is in the API reference. The site itself is built with
``mkdocs build --strict`` by CI (.ci/run)."""

from __future__ import annotations

import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))

pytestmark = pytest.mark.timeout(900)


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def slug(heading: str) -> str:
    """The anchor of a heading as the site (and GitHub) makes it: lower case,
    markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[|\]\([^)]*\)", "", heading).strip().lower()
    text = re.sub(r"[^\w\s-]", "", text)
    return re.sub(r"\s+", "-", text)


def anchors(path: pathlib.Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.S | re.M)
    return {slug(h) for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}


def test_the_site_has_its_pages():
    names = {p.name for p in PAGES}
    for page in ("index.md", "quickstart.md", "migrating.md", "concepts.md", "guide.md", "tutorials.md"):
        assert page in names
    for page in ("performance.md", "api.md", "changelog.md", "distributed.md", "design.md"):
        assert page in names
    nav = (ROOT / "mkdocs.yml").read_text()
    for p in PAGES:
        assert f": {p.name}" in nav, f"{p.name} is not in mkdocs.yml's nav"


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p.read_text())], ids=lambda p: p.name)
def test_code_blocks_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__docs__"}
    for i, block in enumerate(python_blocks(page.read_text())):
        try:
            exec(compile(block, f"{page.name} block {i + 1}", "exec"), namespace)
        except Exception as e:  # noqa: BLE001 - report which block failed
            pytest.fail(f"{page.name} python block {i + 1} failed: {type(e).__name__}: {e}\n{block}")


@pytest.mark.parametrize("doc", [ROOT / "README.md", *PAGES], ids=lambda p: p.name)
def test_relative_links_exist(doc):
    text = re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.S | re.M)
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    for link in links:
        if re.match(r"[a-z]+://", link):
            continue
        target, _, anchor = link.partition("#")
        path = (doc.parent / target).resolve() if target else doc
        assert path.exists(), f"{doc.name}: link {link!r}: {path} does not exist"
        assert ROOT in path.parents or path == ROOT, f"{doc.name}: link {link!r} leaves the repository"
        if anchor and path.suffix == ".md":
            assert anchor in anchors(path), f"{doc.name}: link {link!r}: no heading #{anchor} in {path.name}"


def test_every_public_name_is_in_the_api_reference():
    import eprop
    from eprop import distributed

    api = (DOCS / "api.md").read_text()
    for name in eprop.__all__:
        if name != "__version__":
            assert f"::: eprop.{name}" in api, name
    assert "::: eprop.distributed" in api and distributed.__all__


def test_every_public_member_has_a_docstring():
    """What the API reference shows for each member: its own docstring (not
    the docstring of the type a property returns)."""
    import inspect

    import eprop

    missing = []
    for name in eprop.__all__:
        cls = getattr(eprop, name)
        if not inspect.isclass(cls) or name.endswith("Config"):
            continue
        for member in dir(cls):
            if member.startswith("_"):
                continue
            attr = inspect.getattr_static(cls, member, None)
            for klass in cls.__mro__:  # the descriptor as defined, wherever it is
                if member in vars(klass):
                    attr = vars(klass)[member]
                    break
            doc = getattr(attr, "__doc__", None) or ""
            if isinstance(attr, (classmethod, staticmethod)):
                doc = attr.__func__.__doc__ or ""
            if len(doc.strip()) < 10:
                missing.append(f"{name}.{member}")
    assert not missing, missing
