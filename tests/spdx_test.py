#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Every source, header, build and script file of ringd names its licence in its first three
lines ('SPDX-License-Identifier: MIT'), so that packagers' licence scanners find it per file.
Usage: spdx_test.py SOURCE_ROOT. Names each file without it and exits 1."""
import os
import pathlib
import sys

TAG = 'SPDX-License-Identifier: MIT'
SUFFIXES = {'.cpp', '.hpp', '.h', '.c', '.cc', '.sh', '.py', '.bash', '.cmake'}
NAMES = {'meson.build', 'meson_options.txt', 'CMakeLists.txt', 'run'}

root = pathlib.Path(sys.argv[1])
missing = []
for dirpath, dirnames, filenames in os.walk(root):
    # Not ours: build trees, git's files, caches, and what a subproject or consumer build made.
    dirnames[:] = [d for d in dirnames if not (d.startswith(('build', '.')) or d == '__pycache__'
                                                or d == 'subprojects')]
    for name in filenames:
        path = pathlib.Path(dirpath) / name
        base = name[:-3] if name.endswith('.in') else name
        try:
            head = path.read_text(errors='replace').split('\n')[:3]
        except OSError:
            continue
        if not (pathlib.Path(base).suffix in SUFFIXES or base in NAMES or
                (head and head[0].startswith('#!'))):
            continue
        if not any(TAG in line for line in head):
            missing.append(str(path.relative_to(root)))
for m in sorted(missing):
    print(f'spdx: {m}: no "{TAG}" in its first three lines')
print(f'spdx: {len(missing)} files without the licence line')
sys.exit(1 if missing else 0)
