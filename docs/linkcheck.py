#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Checks the built docs site (site.py's output) for broken internal links; stdlib only.

Usage: linkcheck.py SITE_DIR [DOCS_DIR]
Fails (exit 1), naming the page and the link, when
  - an <a href>, <img src>, <link href> or <script src> names a file that is not in the site
    (a chapter renamed, a diagram not drawn, a link to a source file outside docs/);
  - a link's #anchor names no id in its target page (a heading reworded);
  - a page of DOCS_DIR (default: this script's directory) is not linked from its README.md, the
    index: every page must be reachable from the table of contents.
Links with a scheme (https:, mailto:) are not fetched: the check must work offline.
`linkcheck.py --self-test` checks the checker on a sample site (the doc_linkcheck test).
"""
import html.parser
import pathlib
import re
import sys
import urllib.parse


class Page(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: set[str] = set()
        self.links: list[tuple[str, int]] = []  # (url, line)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        a = dict(attrs)
        for key in ('id', 'name') if tag == 'a' else ('id',):
            if a.get(key):
                self.ids.add(a[key])
        attr = {'a': 'href', 'link': 'href', 'img': 'src', 'script': 'src'}.get(tag)
        if attr and a.get(attr) is not None:
            self.links.append((a[attr], self.getpos()[0]))


def parse(path: pathlib.Path, cache: dict) -> Page:
    if path not in cache:
        p = Page()
        p.feed(path.read_text(errors='replace'))
        cache[path] = p
    return cache[path]


def source_of(page: pathlib.Path, site: pathlib.Path) -> str:
    rel = page.relative_to(site).as_posix()
    md = re.sub(r'(^|/)index\.html$', r'\1README.md', rel)
    return re.sub(r'\.html$', '.md', md)


def check_site(site: pathlib.Path) -> int:
    site = site.resolve()
    cache: dict = {}
    broken = 0
    # 404.html is the web server's page for any missing URL, so mkdocs links it from the root.
    pages = sorted(p for p in site.resolve().rglob('*.html') if p.name != '404.html')
    for page in pages:
        for url, line in parse(page, cache).links:
            parts = urllib.parse.urlsplit(url)
            if parts.scheme or parts.netloc or url in ('', '#'):
                continue
            where = f'{source_of(page, site)} ({page.relative_to(site)}:{line})'
            if parts.path.startswith('/'):
                print(f'linkcheck: {where}: an absolute link {url!r} breaks when the site moves')
                broken += 1
                continue
            target = (page.parent / urllib.parse.unquote(parts.path)).resolve() if parts.path else page
            if site not in (target, *target.parents):
                print(f'linkcheck: {where}: {url!r} leaves the site')
                broken += 1
                continue
            if target.is_dir():
                target = target / 'index.html'
            if not target.is_file():
                print(f'linkcheck: {where}: {url!r}: no such file in the site')
                broken += 1
                continue
            anchor = urllib.parse.unquote(parts.fragment)
            if anchor and target.suffix == '.html' and anchor not in parse(target, cache).ids:
                print(f'linkcheck: {where}: {url!r}: no anchor #{anchor} in {target.relative_to(site)}')
                broken += 1
    print(f'linkcheck: {len(pages)} pages, {sum(len(p.links) for p in cache.values())} links checked')
    return broken


def check_index(docs: pathlib.Path) -> int:
    """Every markdown page is linked from docs/README.md."""
    text = re.sub(r'```.*?```', '', (docs / 'README.md').read_text(), flags=re.S)
    linked = set()
    for target in re.findall(r'\]\(([^)#\s]+\.md)(?:#[^)]*)?\)', text):
        linked.add((docs / target).resolve())
    missing = 0
    for md in sorted(docs.rglob('*.md')):
        if md.name == 'README.md' and md.parent == docs:
            continue
        if md.resolve() not in linked:
            print(f'linkcheck: {md.relative_to(docs)} is not listed in docs/README.md (the index)')
            missing += 1
    return missing


def self_test() -> int:
    """`linkcheck.py --self-test` (the doc_linkcheck test): a small site with one link of each
    kind that must pass and one of each kind that must fail; the checker must name exactly the
    broken ones."""
    import contextlib
    import io
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        site, docs = pathlib.Path(tmp, 'site'), pathlib.Path(tmp, 'docs')
        (site / 'sub').mkdir(parents=True)
        (site / 'img').mkdir()
        (docs / 'sub').mkdir(parents=True)
        (site / 'img' / 'a.svg').write_text('<svg/>')
        (site / 'index.html').write_text(
            '<h2 id="top">t</h2><a href="#top">ok</a><a href="sub/page.html#sec">ok</a>'
            '<img src="img/a.svg"><a href="https://example.org/x">external</a>'
            '<a href="#gone">bad anchor</a><a href="sub/page.html#nope">bad anchor</a>'
            '<img src="img/missing.svg"><a href="sub/other.html">no page</a>'
            '<a href="../outside.html">leaves</a><a href="/abs.html">absolute</a>')
        (site / 'sub' / 'page.html').write_text('<h3 id="sec">s</h3><a href="../index.html">up</a>')
        (docs / 'README.md').write_text('[page](sub/page.md)\n')
        (docs / 'sub' / 'page.md').write_text('# page\n')
        (docs / 'sub' / 'orphan.md').write_text('# not in the index\n')
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            faults = check_site(site) + check_index(docs)
        text = out.getvalue()
        want = ["'#gone'", "'sub/page.html#nope'", "'img/missing.svg'", "'sub/other.html'",
                "'../outside.html'", "'/abs.html'", 'sub/orphan.md is not listed']
        missed = [w for w in want if w not in text]
        if faults != len(want) or missed:
            print(text + f'linkcheck: self-test: {faults} faults, want {len(want)}; missed {missed}')
            return 1
    print(f'linkcheck: self-test: the {len(want)} broken links of the sample site are named, '
          'the good ones pass')
    return 0


def main() -> int:
    if sys.argv[1:] == ['--self-test']:
        return self_test()
    if len(sys.argv) not in (2, 3):
        print('usage: linkcheck.py SITE_DIR [DOCS_DIR]', file=sys.stderr)
        return 2
    site = pathlib.Path(sys.argv[1])
    docs = pathlib.Path(sys.argv[2]) if len(sys.argv) == 3 else pathlib.Path(__file__).resolve().parent
    if not (site / 'index.html').is_file():
        print(f'linkcheck: {site}/index.html: no site there (build it: ./run docs)', file=sys.stderr)
        return 2
    faults = check_site(site) + check_index(docs)
    if faults:
        print(f'linkcheck: {faults} broken')
    return 1 if faults else 0


if __name__ == '__main__':
    sys.exit(main())
