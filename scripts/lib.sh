# Shared helpers for scripts/run.sh and scripts/test.sh.

# Installs Debian/Ubuntu packages that are missing (as root, or through sudo). Each argument is
# `command:package`, or `/path/of/a/file:package` for a package without a command.
ensure_packages() {
  local missing=()
  for spec in "$@"; do
    local cmd=${spec%%:*} pkg=${spec##*:}
    if [[ $cmd == /* ]]; then
      [ -e "$cmd" ] || missing+=("$pkg")
    else
      command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
    fi
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Installs s3s-fs (a small S3-compatible server over a directory; the recording tests store into
# it) unless it is already on PATH or in ~/.cargo/bin. Building it takes a few CPU-minutes once.
ensure_s3s_fs() {
  command -v s3s-fs >/dev/null 2>&1 && return 0
  [ -x "$HOME/.cargo/bin/s3s-fs" ] && return 0
  echo "installing: s3s-fs (cargo install, once)" >&2
  cargo install s3s-fs --version 0.14.1 --features binary --locked --quiet
}
