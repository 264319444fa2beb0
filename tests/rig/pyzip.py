#!/usr/bin/env python3
"""The smallest standard library a script needs, as a python3X.zip for L1.

  PYTHON pyzip.py OUTDIR SCRIPT...

Run it with the interpreter that goes into L1 (the .pyc files are that
interpreter's). It runs `PYTHON -S -I -X importtime SCRIPT --help` for each
SCRIPT (so the imports at the top of a script are seen), takes every
module that was imported from a .py file of the standard library, compiles
each into OUTDIR/python3X.zip (the legacy .pyc layout, which zipimport
reads), and prints its path (its size on stderr). L1's /usr/lib/python3X.zip is on the interpreter's default
sys.path, so nothing else is needed (frozen and built-in modules, e.g. os,
io, _socket, select, come with the binary). Extension modules (.so) are left
out: json, shutil and the rest fall back to pure Python or do without.
"""

import importlib.util
import os
import py_compile
import subprocess
import sys
import sysconfig
import tempfile
import zipfile

# Imported only to be tried (shutil: `try: import bz2`); they need
# extension modules that are left out anyway.
NOT_NEEDED = {"bz2", "lzma", "_compression"}


def traced_modules(script):
    p = subprocess.run([sys.executable, "-S", "-I", "-X", "importtime", script, "--help"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    names = []
    for line in p.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            if name and name != "imported package" and name not in names:
                names.append(name)
    return names


def main():
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    scripts = sys.argv[2:]
    out = os.path.join(sys.argv[1], "python%d%d.zip" % sys.version_info[:2])
    stdlib = os.path.realpath(sysconfig.get_paths()["stdlib"])
    files = {}
    for name in [n for script in scripts for n in traced_modules(script)]:
        if name in NOT_NEEDED:
            continue
        spec = importlib.util.find_spec(name)
        origin = spec and spec.origin
        if not origin or not origin.endswith(".py") or not os.path.realpath(origin).startswith(stdlib + os.sep):
            continue  # frozen, built-in, an extension module, or not the stdlib's
        rel = os.path.relpath(os.path.realpath(origin), stdlib)
        files[rel[:-3] + ".pyc"] = origin
    if "encodings/__init__.pyc" not in files:
        print(f"pyzip: the trace of {' '.join(scripts)} imported no encodings package: did it run?", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(out + ".tmp", "w", zipfile.ZIP_DEFLATED) as z:
        for arc, src in sorted(files.items()):
            pyc = os.path.join(tmp, "m.pyc")
            py_compile.compile(src, cfile=pyc, dfile=arc[:-1], doraise=True,
                               invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
            info = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(pyc, "rb") as f:
                z.writestr(info, f.read())
    os.replace(out + ".tmp", out)
    print(f"pyzip: {out}: {len(files)} modules, {os.path.getsize(out)} bytes", file=sys.stderr)
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
