"""The course site: generated from every lesson folder, built offline by `mkdocs build --strict`,
its claim tables generated (never typed), its Chinese pages twins of the English ones, its links
into `minimind/` pointing at functions that exist, and, in a real browser (Debian's chromium
driven by playwright), every page loading without a broken link, image or console error."""
import ast
import functools
import http.server
import json
import re
import shutil
import threading
from pathlib import Path, PurePosixPath

import pytest

from minimind.course import site
from minimind.course.lessons import PACKAGE_ROOT
from minimind.course.quiz import lesson_folders

CHROMIUM = Path("/usr/bin/chromium")
LESSONS = lesson_folders()
TRANSLATED = [p for p in LESSONS if p.name[:2] <= "03"]
SOURCES = sorted([*PACKAGE_ROOT.glob("lessons/*/*.md"), *site.PAGES.glob("*.md")])
SCREENSHOTS = PACKAGE_ROOT / site.BUILD / "screenshots"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The whole site, generated and built once for this module."""
    build = tmp_path_factory.mktemp("site")
    return site.build_site(build=build), build / site.SOURCE_DIR / "docs"


# --- links into minimind/ ------------------------------------------------------------------------

def _definitions(path: Path) -> set[str]:
    """Top-level functions and classes of a module, and Class.method for their methods."""
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        if isinstance(node, ast.ClassDef):
            names |= {f"{node.name}.{n.name}" for n in node.body
                      if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    return names


def test_every_link_into_minimind_points_at_a_function_that_exists():
    """Each Markdown link to `minimind/...py#name` (guides, READMEs, site pages) names a module
    that exists and a function, class or Class.method it defines."""
    broken, seen = [], 0
    for source in SOURCES:
        text = source.read_text(encoding="utf-8")
        for target, anchor in site.MINIMIND_LINK.findall(text):
            seen += 1
            base = source.parent if source.parent != site.PAGES else PACKAGE_ROOT
            module = (base / target).resolve()
            where = f"{source.relative_to(PACKAGE_ROOT)}: {target}#{anchor}"
            if not module.is_file():
                broken.append(f"{where}: no such file")
            elif anchor and anchor not in _definitions(module):
                broken.append(f"{where}: {anchor} is not defined there")
    assert seen >= 30, f"only {seen} links into minimind/ found"
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("path", LESSONS, ids=[p.name for p in LESSONS])
def test_every_lesson_has_a_code_guide_with_library_upstream_and_papers(path):
    """Every lesson has a guide.md linking into minimind/, naming upstream MiniMind's
    files and citing papers; and a lesson.toml with prerequisites and times."""
    guide = (path / "guide.md").read_text(encoding="utf-8")
    assert len(site.MINIMIND_LINK.findall(guide)) >= 3
    assert "## In upstream MiniMind" in guide and "model/model_minimind.py" in guide
    assert re.search(r"## Papers\n(.|\n)*arxiv\.org/abs/\d{4}\.\d{4,5}", guide)
    info = site.lesson_info(path)
    assert info.study_minutes and info.tests_seconds, "lesson.toml: study_minutes, tests_seconds"
    assert all((PACKAGE_ROOT / "lessons" / p).is_dir() for p in info.prerequisites)


# --- claim tables --------------------------------------------------------------------------------

def test_claim_table_is_the_readmes_generated_calibration_block_by_default():
    """Without --outcomes a lesson page's claim table is exactly its README's calibration block."""
    lesson = site.lesson_info(LESSONS[0])
    readme = (lesson.path / "README.md").read_text(encoding="utf-8")
    table = site.claim_table(lesson, None)
    assert table and table == site.calibration_block(readme)
    assert "| claim | check | threshold |" in table


def test_claim_table_comes_from_an_outcomes_report_when_given():
    """With a `pytest --outcomes-json` report, the table lists that run's checks for the lesson."""
    name = LESSONS[0].name
    report = {"mode": "solutions", "seed": 3, "perturb": True, "claims": {
        f"lessons/{name}/test_claims.py::test_post_ln_stalls_at_a_learning_rate": {"checks": [
            {"label": "Post-LN final loss", "value": 3.31, "op": ">", "threshold": 3.22,
             "margin": 0.028, "holds": True}]},
        "tests/course/test_x.py::test_other": {"checks": []}}}
    tables = site.outcomes_tables(report)
    assert set(tables) == {name}
    assert "| post ln stalls at a learning rate | Post-LN final loss | > 3.22 | 3.31 | +3% |" \
        in tables[name]
    assert "seed 3, --perturb on" in tables[name]
    table = site.claim_table(site.lesson_info(LESSONS[0]), tables)
    page = site.with_table(f"a\n{site.CAL_BEGIN}\nstale\n{site.CAL_END}\nb", table)
    assert "stale" not in page and "3.31" in page


# --- Chinese -------------------------------------------------------------------------------------

def _figures(text: str) -> list[str]:
    return sorted(site.FIGURE.findall(text))


@pytest.mark.parametrize("path", TRANSLATED, ids=[p.name for p in TRANSLATED])
def test_lessons_01_to_03_have_a_chinese_page(path):
    """Lessons 01-03 have README.zh.md (the home page and learning paths: the next test)."""
    assert (path / "README.zh.md").is_file()


def test_translated_readmes_carry_the_english_readmes_generated_claim_table():
    """Each README.zh.md holds the same figures and the very table the calibration wrote into
    README.md (the calibration writes both; `python -m minimind.course.site sync` copies it)."""
    for path in LESSONS:
        english = (path / "README.md").read_text(encoding="utf-8")
        for translation in sorted(path.glob("README.*.md")):
            text = translation.read_text(encoding="utf-8")
            assert site.calibration_block(text) == site.calibration_block(english), translation
            assert _figures(text) == _figures(english), translation


def test_home_page_and_learning_paths_exist_in_english_and_chinese():
    """The site's hand-written pages come in both languages."""
    for name in ("home", "paths"):
        assert (site.PAGES / f"{name}.md").is_file() and (site.PAGES / f"{name}.zh.md").is_file()


def test_every_chinese_page_has_its_english_twin_with_the_same_figures_and_claim_table(built):
    """Every generated *.zh.md has an English page beside it showing the same figures (in the
    same order) and, for a lesson, the identical generated claim table."""
    _, docs = built
    chinese = sorted(docs.rglob("*.zh.md"))
    assert len(chinese) >= 2 + len(TRANSLATED)
    for zh in chinese:
        en = zh.with_name(zh.name.replace(".zh.md", ".md"))
        assert en.is_file(), f"{zh} has no English twin"
        zh_text, en_text = zh.read_text(encoding="utf-8"), en.read_text(encoding="utf-8")
        assert _figures(zh_text) == _figures(en_text), zh
        assert site.calibration_block(zh_text) == site.calibration_block(en_text), zh
        if zh.parent.parent.name == "lessons":
            assert site.calibration_block(zh_text), f"{zh}: no claim table"


# --- building ------------------------------------------------------------------------------------

def test_site_builds_offline_with_one_page_per_lesson_and_no_remote_assets(built):
    """`mkdocs build --strict` succeeds; every lesson folder has a page; no page loads a font,
    script or stylesheet from the network."""
    out, _ = built
    for lesson in LESSONS:
        assert (out / "lessons" / lesson.name / "index.html").is_file(), lesson.name
    assert (out / "zh" / "index.html").is_file() and (out / "search").is_dir()
    remote = re.compile(r"<(?:link|script)[^>]+(?:href|src)=\"(?:https?:)?//", re.I)
    offenders = [str(p.relative_to(out)) for p in out.rglob("*.html")
                 if remote.search(p.read_text(encoding="utf-8"))]
    assert not offenders, f"pages loading remote assets: {offenders[:5]}"
    assert "fonts.googleapis" not in (out / "index.html").read_text(encoding="utf-8")


def test_a_new_lesson_without_quiz_guide_or_translation_still_gets_a_page(tmp_path):
    """The site picks lessons up from the folders: a bare lesson (README only) is generated."""
    root = tmp_path / "repo"
    shutil.copytree(LESSONS[0], root / "lessons" / LESSONS[0].name)
    bare = root / "lessons" / "99_bare"
    bare.mkdir()
    (bare / "README.md").write_text("# Lesson 99: bare\n\n## Why\n\n[code](exercises.py)\n",
                                    encoding="utf-8")
    shutil.copytree(PACKAGE_ROOT / "minimind", root / "minimind",
                    ignore=shutil.ignore_patterns("__pycache__"))
    config = site.generate(root=root, build=tmp_path / "build")
    docs = config.parent / "docs"
    page = (docs / "lessons" / "99_bare" / "index.md").read_text(encoding="utf-8")
    assert "# Lesson 99: bare" in page and "`code`" in page  # no link to a page that is not there
    assert not (docs / "lessons" / "99_bare" / "quiz.md").exists()
    assert "99_bare/index.md" in config.read_text(encoding="utf-8")


def test_links_are_rewritten_to_site_pages_or_become_text():
    """README, guide, figure and minimind/ links map to their site pages; others to text."""
    modules: set[str] = set()
    text = ("[a](../02_position_encoding/README.md) ![f](figures/x.png) "
            "[n](../../minimind/norm.py#RMSNorm.forward) [e](exercises.py) "
            "[w](https://example.org) [top](../../README.md)")
    out = site.rewrite_links(text, "lessons/01_normalization", "lessons/01_normalization/index.md",
                             modules)
    assert "[a](../02_position_encoding/index.md)" in out
    assert "![f](figures/x.png)" in out
    assert "[n](../../code/norm.md#RMSNorm)" in out
    assert "`e`" in out and "[w](https://example.org)" in out
    assert "[top](../../index.md)" in out
    assert modules == {"minimind/norm.py"}
    assert PurePosixPath(site.code_page("minimind/lab/training.py")) == \
        PurePosixPath("code/lab/training.md")


# --- in a real browser ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(built):
    """The built site on a local HTTP server (a free port), as `minimind site serve` does."""
    out, _ = built
    handler = functools.partial(_QuietHandler, directory=str(out))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _page(browser, **options):
    """A new page with generous limits: a page loads in well under a second on an idle machine,
    but CI's cores may be shared."""
    page = browser.new_page(**options)
    page.set_default_timeout(120_000)
    return page


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield chromium
        chromium.close()


def test_every_page_opens_in_chromium_without_broken_links_images_or_console_errors(
        served, browser):
    """From the home page, every page the site links (both languages) loads with status 200,
    no console error, no failed request, every image decoded and every anchor present."""
    page = _page(browser)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console {m.type}: {m.text}")
            if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
    # A request cut short by the next navigation is not a broken link; a missing file is a 404.
    page.on("requestfailed", lambda r: errors.append(f"failed: {r.url} ({r.failure})")
            if r.failure != "net::ERR_ABORTED" else None)
    page.on("response", lambda r: errors.append(f"{r.status}: {r.url}")
            if r.status >= 400 else None)
    todo, seen, anchors = [f"{served}/", f"{served}/zh/"], set(), []
    ids: dict[str, set[str]] = {}
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        response = page.goto(url, wait_until="load")
        assert response is not None and response.status == 200, url
        broken = page.eval_on_selector_all(
            "img", "imgs => imgs.filter(i => !i.complete || i.naturalWidth === 0)"
                   ".map(i => i.src)")
        assert not broken, f"{url}: broken images {broken}"
        ids[url] = set(page.eval_on_selector_all("[id]", "es => es.map(e => e.id)"))
        for href in page.eval_on_selector_all("a[href]", "as => as.map(a => a.href)"):
            if not href.startswith(served):
                continue
            target, _, anchor = href.partition("#")
            if target.endswith("/") or target.endswith(".html"):  # a page, not an asset
                todo.append(target)
                if anchor:
                    anchors.append((url, target, anchor))
    missing = [f"{source}: no #{anchor} in {target}" for source, target, anchor in anchors
               if anchor not in ids.get(target, ())]
    assert not missing, "\n".join(sorted(set(missing))[:20])
    assert not errors, "\n".join(sorted(set(errors))[:20])
    lessons = {u for u in seen if re.search(r"/lessons/\d\d_[^/]+/$", u)}
    assert len(lessons) >= 2 * len(LESSONS) - (len(LESSONS) - len(TRANSLATED))
    page.close()


def test_search_finds_a_lesson_and_screenshots_are_saved(served, browser):
    """Typing 'RMSNorm' in the search box lists lesson 01; the home page and lesson 01 are
    saved as screenshots under build/screenshots/."""
    page = _page(browser, viewport={"width": 1280, "height": 900})
    page.goto(f"{served}/", wait_until="load")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "home.png"), full_page=True)
    results = page.locator(".md-search-result__item a")
    # The index is built in a web worker on first use, and now and then (about one page load in
    # three here) that worker never answers; a fresh page load starts a new one. So: load, type,
    # wait 10 s, and load again, up to six times.
    for attempt in range(6):
        if attempt:
            page.goto(f"{served}/", wait_until="load")
        search = page.locator("input.md-search__input")
        search.click()
        search.fill("RMSNorm")
        try:
            results.first.wait_for(timeout=10_000)
            break
        except Exception:  # playwright's TimeoutError: load the page and type again
            continue
    results.first.wait_for(timeout=1_000)  # fails here, naming the locator, if none came
    hrefs = results.evaluate_all("as => as.map(a => a.href)")
    assert any("01_normalization" in h for h in hrefs), hrefs
    page.goto(f"{served}/lessons/{LESSONS[0].name}/", wait_until="load")
    page.screenshot(path=str(SCREENSHOTS / "lesson-01.png"), full_page=True)
    assert (SCREENSHOTS / "home.png").stat().st_size > 10_000
    page.close()


def test_a_quiz_in_the_browser_checks_an_answer_and_shows_its_explanation(served, browser):
    """On lesson 01's quiz page a wrong number is marked wrong with the answer, a right one
    right, and the explanation appears."""
    page = _page(browser)
    page.goto(f"{served}/lessons/{LESSONS[0].name}/quiz/", wait_until="load")
    box = page.locator(".quiz-question[data-kind='number']").first
    expected = json.loads(box.get_attribute("data-answer"))
    box.locator(".quiz-number").fill(str(int(expected) + 1))
    box.locator(".quiz-check").click()
    assert box.locator(".quiz-result").inner_text().startswith("Not quite")
    box.locator(".quiz-number").fill(f"{int(expected):,}")
    box.locator(".quiz-check").click()
    assert box.locator(".quiz-result").inner_text() == "Right."
    assert box.locator(".quiz-explanation").is_visible()
    page.close()
