#!/usr/bin/env bash
# Builds the codec conformance corpus (tools/conformance/generate.py) and the PNG oracle
# (png_oracle.c against Debian's libpng) into OUT (default target/conformance), once per change
# of what they are made from: lib/tests/conformance.rs runs it before every run, so `cargo test`
# alone works. Needs cjpeg, djpeg (libjpeg-turbo-progs), cwebp, dwebp (webp), gcc and libpng-dev
# (tools/common.sh bootstrap_codec_tools installs them) and python3 with venv.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${1:-$ROOT/target/conformance}"
mkdir -p "$OUT"
# One generator at a time (two test runs would otherwise delete each other's corpus).
exec 9>"$OUT/.lock"
flock 9

missing=()
for tool in cjpeg djpeg cwebp dwebp gcc python3; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
[ -f /usr/include/png.h ] || missing+=("png.h (libpng-dev)")
if [ ${#missing[@]} -gt 0 ]; then
  echo "conformance: missing ${missing[*]} (Debian: apt-get install libjpeg-turbo-progs webp libpng-dev gcc python3-venv)" >&2
  exit 3
fi

want=$({ cat "$HERE/generate.py" "$HERE/png_oracle.c" "$HERE/requirements.txt" "$ROOT"/lib/tests/photos/*.jpg
  cjpeg -version 2>&1; cwebp -version 2>&1; gcc --version | head -1
  printf '%s\n' "${JOIP_CONFORMANCE_DAMAGE_SHARE:-}"; declare -f; } | sha256sum)
if [ -f "$OUT/.generated" ] && [ "$(cat "$OUT/.generated")" = "$want" ]; then exit 0; fi
rm -f "$OUT/.generated"

VENV="$OUT/venv" REQ="$HERE/requirements.txt"
if ! cmp -s "$REQ" "$VENV/.requirements" 2>/dev/null; then
  echo "conformance: installing Pillow into $VENV" >&2
  python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet -r "$REQ"
  cp "$REQ" "$VENV/.requirements"
fi
mkdir -p "$OUT/bin"
gcc -O2 -Wall -Werror -o "$OUT/bin/png-oracle" "$HERE/png_oracle.c" -lpng
# cjpeg warns on stderr when -quality 10 needs 16-bit tables (it writes extended sequential).
"$VENV/bin/python" "$HERE/generate.py" "$OUT/corpus" 2> >(grep -v 'too coarse for baseline' >&2)
echo "$want" >"$OUT/.generated"
