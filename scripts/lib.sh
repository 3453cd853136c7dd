# Shared helpers of run.sh and test.sh: check for a tool, install it from Debian's packages when
# we can (root on Debian), or stop with one line saying what to install.

say() { printf '%s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

apt_updated=0
# apt_install PACKAGE WHAT: install PACKAGE with apt-get if we may (root on Debian), or stop
# with one line saying what to install.
apt_install() {
  local pkg=$1 what=$2
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing $pkg (for $what)..."
    if [ $apt_updated = 0 ]; then
      DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null || die "apt-get update failed; install $pkg by hand"
      apt_updated=1
    fi
    # shellcheck disable=SC2086 # a list of packages
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkg >/dev/null \
      || die "could not install $pkg; install it with: apt-get install $pkg"
  else
    die "$what is missing; install it with: sudo apt-get install $pkg"
  fi
}

# need COMMAND PACKAGE: make sure COMMAND exists, installing PACKAGE if it does not.
need() {
  local cmd=$1 pkg=$2
  command -v "$cmd" >/dev/null 2>&1 && return 0
  apt_install "$pkg" "$cmd"
  command -v "$cmd" >/dev/null 2>&1 || die "$pkg installed but $cmd is still missing"
}

# need_file GLOB PACKAGE: the same for a program outside PATH (PostgreSQL's initdb).
need_file() {
  local glob=$1 pkg=$2
  compgen -G "$glob" >/dev/null && return 0
  apt_install "$pkg" "$glob"
  compgen -G "$glob" >/dev/null || die "$pkg installed but $glob is still missing"
}

# need_pkgs PACKAGE...: Debian packages that provide no command of their own (libraries,
# plugins), installed together if any is missing.
need_pkgs() {
  local missing=() pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  [ ${#missing[@]} = 0 ] && return 0
  apt_install "${missing[*]}" "the room agent's GStreamer"
}

# The web client's npm packages, exactly as locked, and its build.
build_web_client() {
  need node nodejs
  need npm npm
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  [ "$major" -ge 18 ] || die "Node.js $major is too old; the web client needs Node.js 18 or newer"
  local stamp=node_modules/.package-lock.json
  if [ ! -f "$stamp" ] || [ package-lock.json -nt "$stamp" ]; then
    say "installing npm packages from package-lock.json..."
    npm ci --no-audit --no-fund --loglevel=error || die "npm ci failed"
  fi
  say "building the web client..."
  npm run --silent build >/dev/null || die "the web client build failed (npm run build)"
}
