#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Keeps the code in docs/*.md identical to the compiled example files it comes from.

A snippet in markdown is written as
    <!-- snippet: examples/event_loop.cpp#scope -->
    ```cpp
    ...
    ```
and the file has the region between the lines `// [scope]` and `// [/scope]` (or `# [scope]` and
`# [/scope]` in CMake, meson and shell files). `<!-- snippet: FILE -->`, without a region, is the
whole file (a systemd unit, say, that a test checks but that has no room for markers).
The path is relative to the markdown file.
Usage: snippets.py PATH... [--fix]   PATH: a directory (all *.md below it) or a markdown file.
Exits 1 and names each stale snippet, unless --fix (which rewrites them from the files).
Also exits 1, whatever --fix says, for a ```cpp block without a marker (every C++ listing comes
from a compiled file), a marker line that does not parse, and a marker whose file or region does
not exist: each of those would leave a block silently unchecked.

Every other fenced block (shell sessions, output, configuration files, Dockerfiles) either comes
from a file the same way — a region of a script or file that a test runs or reads — or says on
its first line, visibly, that it is illustrative:
    ```sh
    # illustrative: the commands to try, not a recorded session
(after the `#!` line in a script), and snippets.py exits 1 for a block that does neither. `# illustrative` (or `// illustrative`)
tells the reader that nothing checks it against the code; anything else is checked.
"""
import pathlib
import re
import sys

MARK = re.compile(r'<!-- snippet: (?P<file>[^#\s]+)(?:#(?P<name>[\w-]+))? -->\n```(?P<lang>\w*)\n(?P<body>.*?)```',
                  re.S)


def region(path: pathlib.Path, name: str | None) -> str:
    try:
        lines = path.read_text().splitlines(keepends=True)
    except OSError as e:
        raise SystemExit(f'snippets: {path}: cannot read the snippet\'s file: {e.strerror}')
    if name is None:  # `<!-- snippet: FILE -->`: the whole file (a unit file, a short script)
        return ''.join(lines)
    try:
        start = next(i for i, l in enumerate(lines) if l.strip() in (f'// [{name}]', f'# [{name}]'))
        end = next(i for i, l in enumerate(lines) if l.strip() in (f'// [/{name}]', f'# [/{name}]'))
    except StopIteration:
        raise SystemExit(f'snippets: {path}: no region [{name}]')
    return ''.join(lines[start + 1:end])


ILLUSTRATIVE = re.compile(r'^\s*(#|//) illustrative\b')

# Pages that other helpers own this round and that still have unmarked blocks: named, not
# failed, until their owners mark them (then remove the entry). Paths relative to the repository.
PENDING_OWNERS: dict[str, str] = {}  # file -> who will mark its blocks (none left)
REPO = pathlib.Path(__file__).resolve().parent.parent


def marker_lines(lines: list, fence: int) -> range:
    """Where the illustrative marker may stand: the block's first line, or its second after a
    `#!` line (a script keeps its shebang first)."""
    first = fence + 1
    if first < len(lines) and lines[first].startswith('#!'):
        return range(first + 1, min(first + 2, len(lines)))
    return range(first, min(first + 1, len(lines)))


def unchecked_blocks(md: pathlib.Path, text: str) -> int:
    """Counts (and names) cpp blocks without a marker, other blocks neither from a file nor marked
    illustrative, and marker lines that do not parse."""
    faults = 0
    lines = text.split('\n')
    in_fence = False
    try:
        rel = md.resolve().relative_to(REPO).as_posix()
    except ValueError:
        rel = str(md)
    for i, line in enumerate(lines):
        if line.startswith('<!-- snippet:') and not MARK.match('\n'.join(lines[i:i + 2]) + '\n```'):
            print(f'snippets: {md}:{i + 1}: a snippet marker that does not parse: {line}')
            faults += 1
        if not line.startswith('```'):
            continue
        if not in_fence and not (i > 0 and lines[i - 1].startswith('<!-- snippet:')):
            lang = line[3:].strip()
            if lang == 'cpp':
                print(f'snippets: {md}:{i + 1}: a cpp block without a snippet marker '
                      '(every C++ listing comes from a compiled file)')
                faults += 1
            elif not any(ILLUSTRATIVE.match(lines[j]) for j in marker_lines(lines, i)):
                what = f'a {lang} block' if lang else 'a block'
                if rel in PENDING_OWNERS:
                    print(f'snippets: note: {md}:{i + 1}: {what} neither from a file nor marked '
                          f'illustrative (left to {PENDING_OWNERS[rel]})')
                else:
                    print(f'snippets: {md}:{i + 1}: {what} neither from a file (a snippet marker) '
                          "nor marked illustrative (first line '# illustrative: ...')")
                    faults += 1
        in_fence = not in_fence
    return faults


def self_test() -> int:
    """`snippets.py --self-test` (the doc_snippets_rules test): each rule, on a page of its own,
    passes what it should and fails what it should."""
    import subprocess
    import tempfile
    cases = [  # (page, expected exit status)
        ('<!-- snippet: a.cpp#r -->\n```cpp\nint x;\n```\n', 0),
        ('<!-- snippet: a.cpp#r -->\n```cpp\nint y;\n```\n', 1),    # stale
        ('```cpp\nint x;\n```\n', 1),                                # cpp without a marker
        ('<!-- snippet: a.cpp#nosuch -->\n```cpp\nint x;\n```\n', 1),  # no such region
        ('<!-- snippet: a.cpp r -->\n```cpp\nint x;\n```\n', 1),    # a marker that does not parse
        ('```sh\nrm -rf /tmp/x\n```\n', 1),                          # neither checked nor marked
        ('```\n$ ps\n```\n', 1),                                     # the same, no language
        ('```sh\n# illustrative: by hand\nls\n```\n', 0),
        ('```sh\n#!/bin/sh\n# illustrative\nexec x\n```\n', 0),     # after a shebang
        ('<!-- snippet: a.conf -->\n```ini\nk=v\n```\n', 0),          # a whole file
    ]
    failed = 0
    with tempfile.TemporaryDirectory() as tmp:
        d = pathlib.Path(tmp)
        (d / 'a.cpp').write_text('// [r]\nint x;\n// [/r]\n')
        (d / 'a.conf').write_text('k=v\n')
        for i, (page, want) in enumerate(cases):
            md = d / f'case{i}.md'
            md.write_text(page)
            r = subprocess.run([sys.executable, __file__, str(md)], capture_output=True, text=True)
            if r.returncode != want:
                print(f'snippets: self-test case {i} exited {r.returncode}, want {want}:\n{page}'
                      f'{r.stdout}{r.stderr}')
                failed += 1
    if not failed:
        print(f'snippets: self-test: {len(cases)} cases as expected')
    return 1 if failed else 0


def main() -> int:
    if sys.argv[1:] == ['--self-test']:
        return self_test()
    fix = '--fix' in sys.argv
    paths = [pathlib.Path(a) for a in sys.argv[1:] if a != '--fix']
    files = [f for p in paths for f in (sorted(p.rglob('*.md')) if p.is_dir() else [p])]
    stale = 0
    faults = 0
    for md in files:
        text = md.read_text()
        faults += unchecked_blocks(md, text)

        def replace(m: re.Match) -> str:
            nonlocal stale
            want = region(md.parent / m['file'], m['name'])
            where = m['file'] + (f'#{m["name"]}' if m['name'] else '')
            if m['body'] != want:
                stale += 1
                print(f'snippets: {md}: snippet {where} differs from the file'
                      + (' (fixed)' if fix else ''))
            return f'<!-- snippet: {where} -->\n```{m["lang"]}\n{want}```'

        new = MARK.sub(replace, text)
        if fix and new != text:
            md.write_text(new)
    return 0 if (fix or stale == 0) and faults == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
