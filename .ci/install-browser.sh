#!/usr/bin/env bash
# Headless Chromium and its WebDriver for the ward-view browser test, from Debian's packages (run as root, as CI does).
set -euo pipefail
if command -v chromium >/dev/null && command -v chromedriver >/dev/null; then exit 0; fi
apt-get update -q
apt-get install -y -q --no-install-recommends chromium chromium-driver
