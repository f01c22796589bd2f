#!/usr/bin/env python3
"""Keeps the code in docs/*.md identical to the compiled example files it comes from.

A snippet in markdown is written as
    <!-- snippet: examples/event_loop.cpp#scope -->
    ```cpp
    ...
    ```
and the file has the region between the lines `// [scope]` and `// [/scope]` (or `# [scope]` and
`# [/scope]` in CMake, meson and shell files).
The path is relative to the markdown file.
Usage: snippets.py PATH... [--fix]   PATH: a directory (all *.md below it) or a markdown file.
Exits 1 and names each stale snippet, unless --fix (which rewrites them from the files).
"""
import pathlib
import re
import sys

MARK = re.compile(r'<!-- snippet: (?P<file>[^#\s]+)#(?P<name>[\w-]+) -->\n```(?P<lang>\w*)\n(?P<body>.*?)```',
                  re.S)


def region(path: pathlib.Path, name: str) -> str:
    lines = path.read_text().splitlines(keepends=True)
    try:
        start = next(i for i, l in enumerate(lines) if l.strip() in (f'// [{name}]', f'# [{name}]'))
        end = next(i for i, l in enumerate(lines) if l.strip() in (f'// [/{name}]', f'# [/{name}]'))
    except StopIteration:
        raise SystemExit(f'snippets: {path}: no region [{name}]')
    return ''.join(lines[start + 1:end])


def main() -> int:
    fix = '--fix' in sys.argv
    paths = [pathlib.Path(a) for a in sys.argv[1:] if a != '--fix']
    files = [f for p in paths for f in (sorted(p.rglob('*.md')) if p.is_dir() else [p])]
    stale = 0
    for md in files:
        text = md.read_text()

        def replace(m: re.Match) -> str:
            nonlocal stale
            want = region(md.parent / m['file'], m['name'])
            if m['body'] != want:
                stale += 1
                print(f'snippets: {md}: snippet {m["file"]}#{m["name"]} differs from the file'
                      + (' (fixed)' if fix else ''))
            return f'<!-- snippet: {m["file"]}#{m["name"]} -->\n```{m["lang"]}\n{want}```'

        new = MARK.sub(replace, text)
        if fix and new != text:
            md.write_text(new)
    return 0 if fix or stale == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
