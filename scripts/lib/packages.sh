# Sourced by the scripts that need tools from Debian's packages or PyPI.

# missing_of COMMAND:THING ...   prints, one per line, each THING whose COMMAND is not found.
missing_of() {
  local pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || echo "${pair#*:}"
  done
}

# install_missing COMMAND:PACKAGE ...   installs each PACKAGE whose COMMAND is not found,
# with one `apt-get update` (through sudo when not root).
install_missing() {
  local missing=()
  mapfile -t missing < <(missing_of "$@")
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  echo "$(basename "$0"): installing ${missing[*]}" >&2
  local sudo_cmd=()
  [ "$(id -u)" = 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# install_missing_pip COMMAND:REQUIREMENT ...   installs each REQUIREMENT whose COMMAND is
# not found, with the machine's pip (into the user site when not root); Debian's python3
# and pip first when the machine has neither.
install_missing_pip() {
  local missing=()
  mapfile -t missing < <(missing_of "$@")
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  install_missing python3:python3
  python3 -m pip --version >/dev/null 2>&1 || install_missing pip3:python3-pip
  echo "$(basename "$0"): installing ${missing[*]} from PyPI" >&2
  local user=()
  [ "$(id -u)" = 0 ] || user=(--user)
  # Debian's own python refuses installs outside a virtualenv (PEP 668); the test
  # machine's Python is for tests, so install there all the same.
  python3 -m pip install -q "${user[@]}" "${missing[@]}" ||
    python3 -m pip install -q --break-system-packages "${user[@]}" "${missing[@]}"
  # A --user install puts its scripts here, which may not be on PATH yet; so may the
  # interpreter's own scripts directory (pyenv makes shims only on `pyenv rehash`).
  export PATH="$PATH:$(python3 -m site --user-base)/bin"
  export PATH="$PATH:$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
}
