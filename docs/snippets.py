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
Also exits 1, whatever --fix says, for a ```cpp block without a marker (every C++ listing comes
from a compiled file), a marker line that does not parse, and a marker whose file or region does
not exist: each of those would leave a block silently unchecked.
"""
import pathlib
import re
import sys

MARK = re.compile(r'<!-- snippet: (?P<file>[^#\s]+)#(?P<name>[\w-]+) -->\n```(?P<lang>\w*)\n(?P<body>.*?)```',
                  re.S)


def region(path: pathlib.Path, name: str) -> str:
    try:
        lines = path.read_text().splitlines(keepends=True)
    except OSError as e:
        raise SystemExit(f'snippets: {path}: cannot read the snippet\'s file: {e.strerror}')
    try:
        start = next(i for i, l in enumerate(lines) if l.strip() in (f'// [{name}]', f'# [{name}]'))
        end = next(i for i, l in enumerate(lines) if l.strip() in (f'// [/{name}]', f'# [/{name}]'))
    except StopIteration:
        raise SystemExit(f'snippets: {path}: no region [{name}]')
    return ''.join(lines[start + 1:end])


def unchecked_blocks(md: pathlib.Path, text: str) -> int:
    """Counts (and names) cpp blocks without a marker and marker lines that do not parse."""
    faults = 0
    lines = text.split('\n')
    in_fence = False
    for i, line in enumerate(lines):
        if line.startswith('<!-- snippet:') and not MARK.match('\n'.join(lines[i:i + 2]) + '\n```'):
            print(f'snippets: {md}:{i + 1}: a snippet marker that does not parse: {line}')
            faults += 1
        if not line.startswith('```'):
            continue
        if not in_fence and line[3:].strip() == 'cpp' and not (i > 0 and lines[i - 1].startswith('<!-- snippet:')):
            print(f'snippets: {md}:{i + 1}: a cpp block without a snippet marker '
                  '(every C++ listing comes from a compiled file)')
            faults += 1
        in_fence = not in_fence
    return faults


def main() -> int:
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
            if m['body'] != want:
                stale += 1
                print(f'snippets: {md}: snippet {m["file"]}#{m["name"]} differs from the file'
                      + (' (fixed)' if fix else ''))
            return f'<!-- snippet: {m["file"]}#{m["name"]} -->\n```{m["lang"]}\n{want}```'

        new = MARK.sub(replace, text)
        if fix and new != text:
            md.write_text(new)
    return 0 if (fix or stale == 0) and faults == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
