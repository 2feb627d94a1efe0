# Sourced by the tools: installs what Bulwark needs to build when it is missing.
# Swift itself must already be installed (https://www.swift.org/install/).

bulwark_root() { cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd; }

bulwark_need_swift() {
  if ! command -v swift >/dev/null 2>&1; then
    echo "error: swift is not on PATH; install Swift 6.1 or newer first" >&2
    exit 1
  fi
}

# libsodium (Ed25519, SHA-256) and pkg-config, which SwiftPM uses to find it.
bulwark_install_deps() {
  bulwark_need_swift
  if pkg-config --exists libsodium 2>/dev/null; then
    return 0
  fi
  echo "==> installing libsodium-dev and pkg-config"
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq libsodium-dev pkg-config >/dev/null
  pkg-config --exists libsodium || { echo "error: libsodium-dev did not install" >&2; exit 1; }
}
