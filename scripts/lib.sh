# Shared shell helpers for kiln's scripts: cache location, logging, Debian package install.
# Sourced, never run.

KILN_CACHE=${KILN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kiln}

say() { printf '[kiln] %s\n' "$*" >&2; }
die() { printf '[kiln] error: %s\n' "$*" >&2; exit 1; }

# The Debian packages every script may need, installed once per machine.
KILN_PACKAGES="ninja-build gcc clang pkg-config libjansson-dev libcmocka-dev libseccomp-dev
  libmicrohttpd-dev curl libxxhash-dev liburing-dev qemu-system-x86 busybox-static cpio xz-utils
  zstd linux-source-6.1 linux-source-6.12 bc flex bison libelf-dev libssl-dev e2fsprogs make python3-yaml python3-ply python3-git
  valgrind"

# install_packages: apt-get install what is missing from KILN_PACKAGES (needs root).
install_packages() {
	local missing=() p
	for p in $KILN_PACKAGES; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	say "installing Debian packages: ${missing[*]}"
	if [ "$(id -u)" -ne 0 ]; then die "need root to install packages"; fi
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null || die "apt-get update failed"
	apt-get install -y -q "${missing[@]}" >/dev/null || die "apt-get install failed"
}

# hash_of FILE...: a short content hash of the given files, for cache keys.
hash_of() { cat "$@" | sha256sum | cut -c1-16; }
