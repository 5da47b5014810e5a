#!/usr/bin/env bash
# Make Debian's chromium available for the browser test of the campaign page (tests/integration/test_html_browser.py).
#   scripts/browser/install.sh            # prints the browser's path
# Exit 0: installed (or already there); exit 3: it cannot be installed here (not root, or no apt-get),
# with the reason on stderr, so the test can skip and say why.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  command -v chromium
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium is not installed and cannot be installed here (needs root and apt-get): apt-get install chromium" >&2
  exit 3
fi
export DEBIAN_FRONTEND=noninteractive
apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
command -v chromium
