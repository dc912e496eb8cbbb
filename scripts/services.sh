# Shared by scripts/test and scripts/demo: install and start the services oms-upgrade's
# tests and demo need. Source it, then call `ensure_services`.
#
# Environment it exports for the tests and the demo:
#   OMS_TEST_MYSQL_HOST/PORT/USER/PASSWORD  a password user reachable over TCP
#   OMS_TEST_PYTHON                          a python3 with the `blake3` package
: "${OMS_TEST_MYSQL_HOST:=127.0.0.1}"
: "${OMS_TEST_MYSQL_PORT:=3306}"
: "${OMS_TEST_MYSQL_USER:=oms_test}"
: "${OMS_TEST_MYSQL_PASSWORD:=oms_test_pw}"
export OMS_TEST_MYSQL_HOST OMS_TEST_MYSQL_PORT OMS_TEST_MYSQL_USER OMS_TEST_MYSQL_PASSWORD

_sudo() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

_apt_updated=0
_need_pkg() { # _need_pkg PACKAGE... : install the ones dpkg does not know as installed
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "== installing ${missing[*]}"
  if [ $_apt_updated = 0 ]; then _sudo apt-get update -qq; _apt_updated=1; fi
  _sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
}

_wait_for() { # _wait_for SECONDS DESCRIPTION COMMAND... : poll until COMMAND succeeds
  local secs=$1 what=$2; shift 2
  for _ in $(seq $((secs * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  echo "error: $what did not come up within ${secs}s" >&2; return 1
}

ensure_docker() {
  _need_pkg docker.io
  if ! _sudo docker info >/dev/null 2>&1; then
    echo "== starting dockerd"
    # No systemd on CI machines: run the daemon directly, logging beside the target dir.
    mkdir -p target
    (_sudo setsid dockerd >target/dockerd.log 2>&1 &)
    _wait_for 60 "dockerd (log: target/dockerd.log)" _sudo docker info || { tail -20 target/dockerd.log >&2; return 1; }
  fi
}

ensure_mariadb() {
  _need_pkg mariadb-server mariadb-client
  if ! _sudo mariadb -e 'select 1' >/dev/null 2>&1; then
    echo "== starting mariadb"
    mkdir -p target
    _sudo mkdir -p /run/mysqld && _sudo chown mysql:mysql /run/mysqld 2>/dev/null || true
    (_sudo setsid mysqld_safe >target/mysqld.log 2>&1 &)
    _wait_for 60 "mariadb (log: target/mysqld.log)" _sudo mariadb -e 'select 1' || { tail -20 target/mysqld.log >&2; return 1; }
  fi
  # root logs in through the Unix socket only; containers and the tool use TCP, so they
  # get a password user. The password never appears in argv: it goes through stdin.
  _sudo mariadb <<SQL
CREATE USER IF NOT EXISTS '${OMS_TEST_MYSQL_USER}'@'127.0.0.1' IDENTIFIED BY '${OMS_TEST_MYSQL_PASSWORD}';
CREATE USER IF NOT EXISTS '${OMS_TEST_MYSQL_USER}'@'localhost' IDENTIFIED BY '${OMS_TEST_MYSQL_PASSWORD}';
GRANT ALL PRIVILEGES ON *.* TO '${OMS_TEST_MYSQL_USER}'@'127.0.0.1' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO '${OMS_TEST_MYSQL_USER}'@'localhost' WITH GRANT OPTION;
SET GLOBAL max_connections = 1000;
FLUSH PRIVILEGES;
SQL
}

# The hostile-input tests turn the server's general log on for a few statements
# (tests/support/hostile.rs, GeneralLog) and put it back when they end; a test run killed in
# between leaves it on, and it then logs every row of every later test (9.7 GB once). The
# suite needs it off at the start, and an empty log table.
quiet_general_log() {
  _sudo mariadb <<'SQL'
SET GLOBAL general_log = OFF;
TRUNCATE TABLE mysql.general_log;
SQL
  local f
  f=$(_sudo mariadb -N -e "SELECT IF(@@general_log_file LIKE '/%', @@general_log_file, CONCAT(@@datadir, @@general_log_file))")
  if [ -n "$f" ] && _sudo test -s "$f"; then
    echo "== emptying the general log file $f (left on by an interrupted run)"
    _sudo truncate -s 0 "$f"
  fi
}

ensure_python() {
  _need_pkg python3 python3-venv
  local venv=target/pyenv
  if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import blake3, jsonschema, cryptography' 2>/dev/null; then
    echo "== preparing $venv (blake3, jsonschema, cryptography)"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q blake3 jsonschema cryptography
  fi
  OMS_TEST_PYTHON="$(pwd)/$venv/bin/python"
  export OMS_TEST_PYTHON
}

ensure_sshd() {
  # tests/docker_ssh.rs reaches this machine's engine as ssh://root@127.0.0.1:PORT. Each
  # test starts its OWN sshd (`sshd -D -f <temp config>`: loopback only, a free high port,
  # a host key and an authorized test key in a temp folder, public-key root login only),
  # so here we only install the program. The system sshd's config (/etc/ssh/sshd_config)
  # is never edited and no sshd is started on port 22 (Debian's postinst is told by
  # policy-rc.d / the missing init not to start one; nothing here enables it).
  _need_pkg openssh-server openssh-client
  # sshd refuses to start without its privilege-separation folder (runtime, not config).
  [ -d /run/sshd ] || _sudo mkdir -p -m 0755 /run/sshd
}

ensure_services() {
  # chromium: tests/report_html.rs loads the HTML report headless and screenshots it.
  # openssl: tests/metadb_tls.rs makes a CA and a server certificate for its TLS MariaDB.
  _need_pkg busybox-static ca-certificates chromium openssl
  ensure_docker
  ensure_mariadb
  ensure_python
  ensure_sshd
}
