"""The course website: MkDocs Material pages generated from the repository, built offline.

    minimind site build [--outcomes FILE]     -> build/site/
    minimind site serve [--port 8000]         build, then serve it on http://127.0.0.1:8000/

Every page is generated into build/site-src/ (gitignored) from what the repository holds, for
every `lessons/NN_topic/` folder there is:

- lessons/NN_topic/index.md: the lesson's README.md with its figures, a box with the lesson's
  time and prerequisites (`lesson.toml`), and links rewritten for the site; index.zh.md from
  README.zh.md where a translation exists.
- the claim table: by default the README's generated calibration block (between
  `<!-- calibration:begin -->` and `<!-- calibration:end -->`, written by
  `python -m minimind.course.calibrate --write` from 40 real runs); with `--outcomes FILE` (a
  report from `pytest --outcomes-json FILE`) the table of that run's checks instead. Either way
  the table is generated, never typed, and a Chinese page gets the very same table injected
  between its own markers.
- quiz.md from quiz.toml (answers computed from the code at build time), guide.md from the
  lesson's guide.md (the code guide), code/*.md: the library's source, one anchor per function,
  for the guides' links into `minimind/`.
- the home page and the learning paths from minimind/course/site_pages/ (English and Chinese).

Nothing is fetched: the theme's web fonts are off (`theme.font: false`) and every plugin used
(search, i18n) works offline.
"""
from __future__ import annotations

import argparse
import ast
import functools
import html
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from minimind.course.lessons import PACKAGE_ROOT
from minimind.course.quiz import LETTERS, QUIZ_FILE, Question, lesson_folders, load_quiz

PAGES = Path(__file__).with_name("site_pages")
BUILD = "build"
SOURCE_DIR = "site-src"  # build/site-src: generated Markdown and mkdocs.yml
SITE_DIR = "site"  # build/site: the HTML
LANGUAGES = ("en", "zh")
SITE_PAGES = ("index.md", "paths.md")  # generated from site_pages/home*.md and paths*.md
CAL_BEGIN, CAL_END = "<!-- calibration:begin -->", "<!-- calibration:end -->"
CALIBRATION = re.compile(re.escape(CAL_BEGIN) + r"(.*?)" + re.escape(CAL_END), re.S)
LINK = re.compile(r"(!?\[[^\]]*\])\(([^)\s]+)\)")
MINIMIND_LINK = re.compile(r"\]\(((?:\.\./)*minimind/[\w/]+\.py)(?:#([\w.]+))?\)")
FIGURE = re.compile(r"!\[[^\]]*\]\((figures/[^)]+)\)")

TEXT = {
    "en": {
        "time": "Time", "prereq": "Prerequisites", "none": "none", "also": "With this lesson",
        "quiz": "quiz", "guide": "code guide", "study": "about {m} min to read and do the "
        "exercises (an estimate)", "tests": "its tests take {s} s of CPU time (measured)",
        "unmeasured": "not measured yet", "lesson": "lesson", "shows": "what it shows",
        "minutes": "study time", "run": "tests (CPU time)", "measured": "measured",
    },
    "zh": {
        "time": "时间", "prereq": "先修", "none": "无", "also": "本课还有",
        "quiz": "测验", "guide": "代码导读", "study": "阅读并完成练习约 {m} 分钟（估计）",
        "tests": "测试耗时 {s} 秒 CPU 时间（实测）", "unmeasured": "尚未测量", "lesson": "课",
        "shows": "内容", "minutes": "学习时间", "run": "测试（CPU 时间）", "measured": "测量",
    },
}


class SiteError(RuntimeError):
    """The site cannot be generated or built as asked."""


@dataclass
class LessonInfo:
    """What the site knows about one lesson folder."""

    path: Path
    title: str
    prerequisites: list[str] = field(default_factory=list)
    study_minutes: int | None = None
    tests_seconds: float | None = None
    summary: str = ""

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def number(self) -> str:
        return self.name.split("_", 1)[0]

    @property
    def has_quiz(self) -> bool:
        return (self.path / QUIZ_FILE).is_file()

    @property
    def has_guide(self) -> bool:
        return (self.path / "guide.md").is_file()

    def translation(self, lang: str) -> Path | None:
        path = self.path / f"README.{lang}.md"
        return path if lang != "en" and path.is_file() else None


def lesson_info(path: Path) -> LessonInfo:
    """A lesson's title (from its README's first line) and its lesson.toml, if any."""
    first = (path / "README.md").read_text(encoding="utf-8").splitlines()[0]
    title = re.sub(r"^#\s*Lesson\s*\d+:\s*", "", first).strip() or path.name
    meta: dict[str, Any] = {}
    if (path / "lesson.toml").is_file():
        meta = tomllib.loads((path / "lesson.toml").read_text(encoding="utf-8"))
    return LessonInfo(path, title, list(meta.get("prerequisites", [])),
                      meta.get("study_minutes"), meta.get("tests_seconds"),
                      str(meta.get("summary", "")))


# --- claim tables --------------------------------------------------------------------------------

def calibration_block(readme: str) -> str | None:
    match = CALIBRATION.search(readme)
    return match.group(1).strip() if match else None


def outcomes_tables(outcomes: dict[str, Any]) -> dict[str, str]:
    """Per lesson, the table of a `pytest --outcomes-json` report's claim checks."""
    rows: dict[str, list[str]] = {}
    for nodeid, record in outcomes.get("claims", {}).items():
        parts = PurePosixPath(nodeid.split("::")[0]).parts
        if len(parts) < 2 or parts[0] != "lessons":
            continue
        claim = nodeid.split("::")[-1].split("[")[0].removeprefix("test_").replace("_", " ")
        for check in record.get("checks", []):
            label = str(check["label"]).replace("|", "\\|")
            rows.setdefault(parts[1], []).append(
                f"| {claim} | {label} | {check['op']} {check['threshold']:.4g} | "
                f"{check['value']:.4g} | {check['margin']:+.0%} |")
    mode = outcomes.get("mode", "?")
    seed, perturb = outcomes.get("seed", "?"), "on" if outcomes.get("perturb") else "off"
    head = (f"Measured in one run (`pytest --outcomes-json`: mode {mode}, seed {seed}, "
            f"--perturb {perturb}).\n\n| claim | check | threshold | measured | margin |\n"
            "|---|---|---|---|---|")
    return {lesson: head + "\n" + "\n".join(r) for lesson, r in rows.items()}


def claim_table(lesson: LessonInfo, tables: dict[str, str] | None) -> str:
    """The table the site shows: the run's (with --outcomes), else the README's generated block."""
    if tables is not None and lesson.name in tables:
        return tables[lesson.name]
    block = calibration_block((lesson.path / "README.md").read_text(encoding="utf-8"))
    return block or ""


def sync_translations(root: Path = PACKAGE_ROOT) -> list[Path]:
    """Copy each README's generated claim table into its translations (README.zh.md, ...), as
    `python -m minimind.course.calibrate --write` does; returns the files changed."""
    changed = []
    for folder in lesson_folders(root):
        block = calibration_block((folder / "README.md").read_text(encoding="utf-8"))
        for translation in sorted(folder.glob("README.*.md")):
            old = translation.read_text(encoding="utf-8")
            new = with_table(old, block or "")
            if new != old:
                translation.write_text(new, encoding="utf-8")
                changed.append(translation)
    return changed


def with_table(text: str, table: str) -> str:
    if not CALIBRATION.search(text):
        return text
    return CALIBRATION.sub(lambda _: f"{CAL_BEGIN}\n{table}\n{CAL_END}", text, count=1)


# --- links ---------------------------------------------------------------------------------------

def site_path(repo_path: PurePosixPath, code_modules: set[str]) -> str | None:
    """Where a repository file lives on the site (None: it has no page there)."""
    parts = repo_path.parts
    if repo_path == PurePosixPath("README.md"):
        return "index.md"
    if str(repo_path) in SITE_PAGES:  # the hand-written pages link each other by site name
        return str(repo_path)
    if len(parts) >= 2 and parts[0] == "lessons":
        name = parts[-1]
        if len(parts) == 3 and re.fullmatch(r"README(\.\w+)?\.md", name):
            return f"lessons/{parts[1]}/index.md"
        if len(parts) == 3 and name in ("guide.md", QUIZ_FILE):
            return f"lessons/{parts[1]}/{'guide' if name == 'guide.md' else 'quiz'}.md"
        if len(parts) == 4 and parts[2] == "figures":
            return str(repo_path)
        return None
    if parts and parts[0] == "minimind" and repo_path.suffix == ".py":
        code_modules.add(str(repo_path))
        return code_page(str(repo_path))
    return None


def code_page(module_path: str) -> str:
    """minimind/lab/training.py -> code/lab/training.md"""
    return "code/" + str(PurePosixPath(module_path).relative_to("minimind").with_suffix(".md"))


def _normpath(path: PurePosixPath) -> PurePosixPath | None:
    parts: list[str] = []
    for part in path.parts:
        if part == "..":
            if not parts:
                return None
            parts.pop()
        elif part != ".":
            parts.append(part)
    return PurePosixPath(*parts) if parts else None


def rewrite_links(text: str, source_dir: str, page: str, code_modules: set[str]) -> str:
    """Repository-relative links of a file in `source_dir` made relative to the site `page`;
    a link to a file the site has no page for becomes its text."""

    def fix(match: re.Match[str]) -> str:
        label, target = match.group(1), match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            return match.group(0)
        path, _, anchor = target.partition("#")
        repo = _normpath(PurePosixPath(source_dir) / path)
        dest = site_path(repo, code_modules) if repo is not None else None
        if dest is None:
            if label.startswith("!"):
                return match.group(0)
            text_ = label[1:-1]
            return text_ if text_.startswith("`") else f"`{text_}`"
        if anchor and dest.startswith("code/"):
            anchor = anchor.split(".")[0]  # a method links to its class's anchor
        rel = os.path.relpath(dest, str(PurePosixPath(page).parent))
        return f"{label}({rel}{'#' + anchor if anchor else ''})"

    return LINK.sub(fix, text)


# --- pages ---------------------------------------------------------------------------------------

def info_box(lesson: LessonInfo, lang: str, names: dict[str, LessonInfo]) -> str:
    t = TEXT[lang]
    time = []
    if lesson.study_minutes:
        time.append(t["study"].format(m=lesson.study_minutes))
    if lesson.tests_seconds:
        time.append(t["tests"].format(s=round(lesson.tests_seconds)))
    prereqs = [f"[{names[p].number} {names[p].title}](../{p}/index.md)" if p in names
               else f"`{p}`" for p in lesson.prerequisites] or [t["none"]]
    also = [f"[{t['quiz']}](quiz.md)" if lesson.has_quiz else "",
            f"[{t['guide']}](guide.md)" if lesson.has_guide else ""]
    lines = [f'!!! info "{t["time"]} · {t["prereq"]}"',
             f"    **{t['time']}:** {'; '.join(time) or t['unmeasured']}  ",
             f"    **{t['prereq']}:** {', '.join(prereqs)}  "]
    if any(also):
        lines.append(f"    **{t['also']}:** {' · '.join(a for a in also if a)}")
    return "\n".join(lines) + "\n"


def lesson_page(lesson: LessonInfo, source: Path, table: str, lang: str,
                names: dict[str, LessonInfo],
                code_modules: set[str]) -> str:
    text = with_table(source.read_text(encoding="utf-8"), table)
    text = rewrite_links(text, f"lessons/{lesson.name}", f"lessons/{lesson.name}/index.md",
                         code_modules)
    head, _, body = text.partition("\n")
    return f"{head}\n\n{info_box(lesson, lang, names)}\n{body}"


def _inline(text: str) -> str:
    """The few Markdown marks quiz text uses (`code`, *emphasis*), as escaped HTML."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*([^*\s][^*]*)\*", r"<em>\1</em>", out)


def quiz_page(lesson: LessonInfo) -> str:
    """The quiz as HTML the site's quiz.js checks in the browser; answers computed now."""
    quiz = load_quiz(lesson.path)
    lines = [f"# Quiz: lesson {lesson.number}, {lesson.title}", "",
             "Answer each question and press *Check*: the page says whether you are right and "
             "explains the answer. The same quiz runs in the terminal: "
             f"`minimind quiz {lesson.number}`. Answers marked *computed* were derived from the "
             "code in `minimind/` when this site was built.", ""]
    for i, q in enumerate(quiz, 1):
        lines.append(question_html(i, q))
    return "\n".join(lines) + "\n"


def question_html(i: int, q: Question) -> str:
    expected = q.expected()
    attrs = {"data-kind": q.kind, "data-answer": repr(float(expected)) if q.kind == "number"
             else str(int(expected)), "data-tolerance": repr(q.tolerance),
             "data-answer-text": q.answer_text(expected), "id": f"q-{q.id}"}
    tag = " <em>(computed)</em>" if q.compute else ""
    out = ['<div class="quiz-question" ' + " ".join(
        f'{k}="{html.escape(v)}"' for k, v in attrs.items()) + ">",
        f'<p class="quiz-text"><strong>{i}.</strong> {_inline(q.text)}{tag}</p>']
    if q.kind == "choice":
        for j, option in enumerate(q.options):
            out.append(f'<label class="quiz-option"><input type="radio" name="q-{q.id}" '
                       f'value="{j}"> ({LETTERS[j]}) {_inline(option)}</label>')
    else:
        unit = f" {html.escape(q.unit)}" if q.unit else ""
        out.append(f'<input class="quiz-number" type="text" inputmode="decimal" '
                   f'aria-label="your answer">{unit}')
    out += ['<button class="quiz-check md-button" type="button">Check</button>',
            '<p class="quiz-result" hidden></p>',
            f'<p class="quiz-explanation" hidden>{_inline(q.explain(expected))}</p>', "</div>", ""]
    return "\n".join(out)


def code_markdown(module_path: str, root: Path) -> str:
    """A library module's source, split at its top-level functions and classes, each under a
    heading whose anchor is its name (the code guides link to `code/norm.md#rms_norm`)."""
    source = (root / module_path).read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    starts = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list]) - 1
            starts.append((first, node.name))
    out = [f"# `{module_path}`", "",
           "The library's source as this site was built; each function and class has its own "
           "anchor.", ""]
    edges = [s for s, _ in starts] + [len(lines)]
    if starts and starts[0][0] > 0:
        out += ["```python", *lines[:starts[0][0]], "```", ""]
    for (start, name), end in zip(starts, edges[1:]):
        chunk = "\n".join(lines[start:end]).rstrip()
        out += [f"## `{name}` {{#{name}}}", "", "```python", chunk, "```", ""]
    if not starts:
        out += ["```python", source.rstrip(), "```", ""]
    return "\n".join(out)


def lessons_table(lessons: list[LessonInfo], lang: str, page: str) -> str:
    t = TEXT[lang]
    base = os.path.relpath("lessons", str(PurePosixPath(page).parent))
    rows = [f"| {t['lesson']} | {t['minutes']} | {t['run']} | {t['also']} |", "|---|---|---|---|"]
    for lesson in lessons:
        link = f"[{lesson.number} {lesson.title}]({base}/{lesson.name}/index.md)"
        minutes = f"~{lesson.study_minutes} min" if lesson.study_minutes else t["unmeasured"]
        secs = f"{round(lesson.tests_seconds)} s" if lesson.tests_seconds else t["unmeasured"]
        also = [f"[{t['quiz']}]({base}/{lesson.name}/quiz.md)" if lesson.has_quiz else "",
                f"[{t['guide']}]({base}/{lesson.name}/guide.md)" if lesson.has_guide else ""]
        rows.append(f"| {link} | {minutes} | {secs} | {' · '.join(a for a in also if a)} |")
    return "\n".join(rows)


@dataclass(frozen=True)
class QuickExperiment:
    """One claim of the 30-minute path (site_pages/paths.toml)."""

    lesson: str
    test: str  # test_file.py::test_name
    sections: dict[str, str]  # per language, the README section that explains it
    read_minutes: int
    seconds: float  # the test's measured duration (pytest --durations)
    titles: dict[str, str]

    @property
    def command(self) -> str:
        return f"pytest lessons/{self.lesson}/{self.test} --solutions"


def quick_experiments() -> list[QuickExperiment]:
    data = tomllib.loads((PAGES / "paths.toml").read_text(encoding="utf-8"))
    experiments = []
    for q in data["quick"]:
        def per_language(key: str) -> dict[str, str]:
            return {("en" if k == key else k.removeprefix(f"{key}_")): str(v)
                    for k, v in q.items() if k == key or k.startswith(f"{key}_")}

        experiments.append(QuickExperiment(q["lesson"], q["test"], per_language("section"),
                                           int(q["read_minutes"]), float(q["seconds"]),
                                           per_language("title")))
    return experiments


def quick_table(lessons: list[LessonInfo], lang: str, page: str) -> str:
    """The 30-minute path: each experiment's command, its measured run time and what to read."""
    names = {x.name: x for x in lessons}
    head = {"en": ("experiment", "run it", "runs in", "then read"),
            "zh": ("实验", "运行", "运行时间", "然后阅读")}[lang]
    rows = [f"| {' | '.join(head)} |", "|---|---|---|---|"]
    base = os.path.relpath("lessons", str(PurePosixPath(page).parent))
    for q in quick_experiments():
        lesson = names.get(q.lesson)
        section = q.sections.get(lang, q.sections["en"])
        where = (f"[{lesson.number} {lesson.title}, {section}]({base}/{q.lesson}/index.md) "
                 f"(~{q.read_minutes} min)" if lesson else section)
        rows.append(f"| {q.titles.get(lang, q.titles['en'])} | `{q.command}` | "
                    f"{q.seconds:.0f} s | {where} |")
    return "\n".join(rows)


def fill(template: str, lessons: list[LessonInfo], lang: str, page: str) -> str:
    """Placeholders of the hand-written pages: {{lessons}} and {{minutes:01-06}}."""
    text = template.replace("{{lessons}}", lessons_table(lessons, lang, page))

    def minutes(match: re.Match[str]) -> str:
        lo, hi = match.group(1), match.group(2)
        chosen = [x.study_minutes or 0 for x in lessons if lo <= x.number <= hi]
        return str(sum(chosen))

    def seconds(match: re.Match[str]) -> str:
        lo, hi = match.group(1), match.group(2)
        chosen = [x.tests_seconds or 0 for x in lessons if lo <= x.number <= hi]
        return str(round(sum(chosen)))

    if "{{quick}}" in text:
        text = text.replace("{{quick}}", quick_table(lessons, lang, page))
    text = re.sub(r"\{\{minutes:(\d\d)-(\d\d)\}\}", minutes, text)
    return re.sub(r"\{\{seconds:(\d\d)-(\d\d)\}\}", seconds, text)


# --- mkdocs.yml ----------------------------------------------------------------------------------

def mkdocs_config(lessons: list[LessonInfo], code_modules: list[str], site_dir: Path) -> str:
    nav = ["nav:", "  - Home: index.md", "  - Learning paths: paths.md", "  - Lessons:"]
    for lesson in lessons:
        nav.append(f"    - {lesson.number} {lesson.title}:")
        nav.append(f"      - lessons/{lesson.name}/index.md")
        if lesson.has_quiz:
            nav.append(f"      - Quiz: lessons/{lesson.name}/quiz.md")
        if lesson.has_guide:
            nav.append(f"      - Code guide: lessons/{lesson.name}/guide.md")
    if code_modules:
        nav.append("  - Source:")
        for module in code_modules:
            nav.append(f"    - {module}: {code_page(module)}")
    return "\n".join([
        "# Generated by minimind/course/site.py; edit that, not this.",
        "site_name: minimind lessons",
        "site_description: An executable course on why modern LLMs are built the way they are",
        "docs_dir: docs",
        f"site_dir: {json.dumps(str(site_dir))}",
        "strict: true",
        "theme:",
        "  name: material",
        "  custom_dir: overrides",
        "  font: false  # no web fonts: the site builds and reads offline",
        "  language: en",
        "  features: [navigation.sections, navigation.top, search.highlight, "
        "content.code.copy, toc.follow]",
        "plugins:",
        "  - search:",
        "      lang: en  # lunr's Chinese support needs a segmenter; English words still match",
        "  - i18n:",
        "      docs_structure: suffix",
        "      fallback_to_default: true",
        "      reconfigure_material: true",
        "      reconfigure_search: false",
        "      languages:",
        "        - locale: en",
        "          name: English",
        "          default: true",
        "          build: true",
        "        - locale: zh",
        "          name: 中文",
        "          build: true",
        "          nav_translations:",
        "            Home: 首页",
        "            Learning paths: 学习路线",
        "            Lessons: 课程",
        "            Quiz: 测验",
        "            Code guide: 代码导读",
        "            Source: 源代码",
        "markdown_extensions:",
        "  - tables",
        "  - admonition",
        "  - attr_list",
        "  - md_in_html",
        "  - toc:",
        "      permalink: true",
        "  - pymdownx.highlight",
        "  - pymdownx.superfences",
        "extra_javascript: [assets/quiz.js]",
        "extra_css: [assets/extra.css]",
        *nav, ""])


# --- generate and build --------------------------------------------------------------------------

def generate(root: Path = PACKAGE_ROOT, outcomes: Path | None = None,
             build: Path | None = None) -> Path:
    """Write the site's Markdown and mkdocs.yml under build/site-src; returns mkdocs.yml."""
    build = build or root / BUILD
    src, docs = build / SOURCE_DIR, build / SOURCE_DIR / "docs"
    if src.exists():
        shutil.rmtree(src)
    docs.mkdir(parents=True)
    tables = None
    if outcomes is not None:
        try:
            tables = outcomes_tables(json.loads(outcomes.read_text(encoding="utf-8")))
        except (OSError, ValueError) as err:
            raise SiteError(f"--outcomes {outcomes}: {err}") from None
    lessons = [lesson_info(p) for p in lesson_folders(root)]
    names = {x.name: x for x in lessons}
    code_modules: set[str] = set()

    def write(rel: str, text: str) -> None:
        path = docs / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")

    for lesson in lessons:
        out = f"lessons/{lesson.name}"
        table = claim_table(lesson, tables)
        write(f"{out}/index.md", lesson_page(lesson, lesson.path / "README.md", table, "en",
                                             names, code_modules))
        for lang in LANGUAGES[1:]:
            translated = lesson.translation(lang)
            if translated is not None:
                write(f"{out}/index.{lang}.md", lesson_page(lesson, translated, table, lang,
                                                            names, code_modules))
        if lesson.has_quiz:
            write(f"{out}/quiz.md", quiz_page(lesson))
        if lesson.has_guide:
            guide = (lesson.path / "guide.md").read_text(encoding="utf-8")
            write(f"{out}/guide.md", rewrite_links(guide, out, f"{out}/guide.md", code_modules))
        if (lesson.path / "figures").is_dir():
            shutil.copytree(lesson.path / "figures", docs / out / "figures")
    for name in ("home", "paths"):
        page = "index.md" if name == "home" else "paths.md"
        for lang in LANGUAGES:
            template = PAGES / (f"{name}.md" if lang == "en" else f"{name}.{lang}.md")
            if template.is_file():
                text = rewrite_links(template.read_text(encoding="utf-8"), "", page,
                                     code_modules)
                text = fill(text, lessons, lang, page)
                write(page if lang == "en" else page.replace(".md", f".{lang}.md"), text)
    for module in sorted(code_modules):
        if (root / module).is_file():
            write(code_page(module), code_markdown(module, root))
    (docs / "assets").mkdir()
    for asset in ("quiz.js", "extra.css"):
        shutil.copy(PAGES / asset, docs / "assets" / asset)
    shutil.copytree(PAGES / "overrides", src / "overrides")
    config = src / "mkdocs.yml"
    config.write_text(mkdocs_config(lessons, sorted(code_modules), build / SITE_DIR),
                      encoding="utf-8")
    return config


def build_site(root: Path = PACKAGE_ROOT, outcomes: Path | None = None,
               build: Path | None = None, quiet: bool = True) -> Path:
    """Generate the pages and run `mkdocs build --strict`; returns the site folder."""
    config = generate(root, outcomes, build)
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config)]
    if quiet:
        cmd.append("--quiet")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SiteError(f"mkdocs build failed:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return (build or root / BUILD) / SITE_DIR


def serve(site: Path, port: int, host: str = "127.0.0.1") -> None:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    with http.server.ThreadingHTTPServer((host, port), handler) as server:
        print(f"serving {site} on http://{host}:{server.server_address[1]}/ (Ctrl-C stops)")
        server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minimind site", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("build", "serve", "sync"),
                        help="build: write build/site/; serve: build, then serve it locally; "
                             "sync: copy each README's claim table into its translations")
    parser.add_argument("--outcomes", default=None, metavar="FILE",
                        help="claim tables from this `pytest --outcomes-json` report instead of "
                             "the READMEs' calibration blocks")
    parser.add_argument("--port", type=int, default=8000, help="port for serve")


def run(args: argparse.Namespace) -> int:
    if args.action == "sync":
        for path in sync_translations():
            print(f"wrote {path.relative_to(PACKAGE_ROOT)}")
        return 0
    site = build_site(outcomes=Path(args.outcomes) if args.outcomes else None)
    print(f"built {site} (`minimind site serve` serves it)")
    if args.action == "serve":
        try:
            serve(site, args.port)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
