#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Builds docs/ as an HTML site: `./run docs` (then linkcheck.py checks it).

Usage: site.py BUILD_DIR      the site goes to BUILD_DIR/site (open BUILD_DIR/site/index.html)

Why mkdocs (Debian's `mkdocs` package) and not pandoc: the chapters link to each other as
`x.md#anchor`, which is what GitHub shows; mkdocs rewrites those links to the generated pages
itself, and gives a navigation bar and a search page, where pandoc converts one file at a time
and would need a Lua filter for the links and a hand-made navigation. The mkdocs package is
also a tenth of pandoc's size. The configuration is written here (into BUILD_DIR), not committed,
because mkdocs refuses a configuration file inside its docs_dir and docs/ is what we may change.

The navigation is docs/README.md's list, in its order: the index is the table of contents, and
linkcheck.py fails when a page is missing from it. The diagrams are drawn again from their .dot
sources with graphviz into the site, so the site shows what the sources say (the doc_diagrams
test keeps the committed SVGs, which GitHub shows, equal to them).
"""
import pathlib
import re
import shutil
import subprocess
import sys

DOCS = pathlib.Path(__file__).resolve().parent
LINK = re.compile(r'\[([^\]]+)\]\(([^)#\s]+\.md)(?:#[^)]*)?\)')


def nav_from_index() -> list:
    """The pages docs/README.md links to, in order, each once, with the link's text as title."""
    seen = {'README.md'}
    nav = [{'Index': 'README.md'}]
    text = re.sub(r'```.*?```', '', (DOCS / 'README.md').read_text(), flags=re.S)
    for title, target in LINK.findall(text):
        page = (DOCS / target).resolve().relative_to(DOCS).as_posix()
        if page in seen or not (DOCS / page).is_file():
            continue  # linkcheck.py names broken links
        seen.add(page)
        nav.append({title.replace('`', '').replace(':', ' -'): page})
    return nav


def yaml_quote(s: str) -> str:
    return '"' + s.replace('\\', '\\\\').replace('"', '\\"') + '"'


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__.split('\n\n')[1], file=sys.stderr)
        return 2
    build = pathlib.Path(sys.argv[1]).resolve()
    site = build / 'site'
    build.mkdir(parents=True, exist_ok=True)
    lines = [
        'site_name: ringd — modern daemon patterns',
        f'docs_dir: {yaml_quote(str(DOCS))}',
        f'site_dir: {yaml_quote(str(site))}',
        'use_directory_urls: false',  # plain files: the site opens from disk, links are checkable
        'strict: true',  # a warning (a link to a missing page) fails the build
        'theme:',
        '  name: mkdocs',  # Debian's readthedocs theme names scripts it does not ship
        '  highlightjs: false',  # no script from a CDN: the site works offline
        'markdown_extensions: [toc, tables, fenced_code, sane_lists]',  # lists keep their numbers
        'nav:',
    ]
    lines += [f'  - {yaml_quote(t)}: {yaml_quote(p)}' for item in nav_from_index() for t, p in item.items()]
    config = build / 'mkdocs.yml'
    config.write_text('\n'.join(lines) + '\n')
    mkdocs = shutil.which('mkdocs')
    dot = shutil.which('dot')
    if mkdocs is None or dot is None:
        print('site: mkdocs and graphviz (dot) are needed: apt-get install mkdocs graphviz',
              file=sys.stderr)
        return 2
    r = subprocess.run([mkdocs, 'build', '--clean', '-f', str(config)])
    if r.returncode != 0:
        print(f'site: mkdocs build failed (configuration: {config})', file=sys.stderr)
        return 1
    for src in sorted((DOCS / 'diagrams').glob('*.dot')):
        out = site / 'diagrams' / (src.stem + '.svg')
        r = subprocess.run([dot, '-Tsvg', str(src), '-o', str(out)])
        if r.returncode != 0:
            print(f'site: dot cannot draw {src}', file=sys.stderr)
            return 1
    print(f'site: {site}/index.html')
    return 0


if __name__ == '__main__':
    sys.exit(main())
