#!/usr/bin/env bash
# Installs what kiln needs, builds kiln and the guest images, and boots configs/hello.json:
# the guest's console shows here, and the demo ends when the guest reboots. Where this host
# has no usable KVM, the same command runs inside the nested-KVM harness (tests/e2e/in-l1).
set -euo pipefail
cd "$(dirname "$0")"
. scripts/lib.sh
install_packages
tests/guest/build-all
ninja build/kiln >/dev/null
config=configs/hello.json
say "booting $config"
exec tests/e2e/in-l1 --timeout 900 build/kiln --no-api --config-file "$config"
