#!/bin/bash
# The web part's node packages, exactly as package-lock.json pins them;
# quiet and quick when they are there already.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
	echo "imgsearch: npm ci in web/"
	npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
