#!/bin/bash
# Entrypoint of the mysql:8.4 STAND-IN (images/mysql-standin): Debian's MariaDB 10.11, not MySQL.
# It follows the official mysql image's docker-entrypoint.sh contract, written anew for MariaDB:
#   - arguments starting with "-" get "mysqld" prepended; other commands are exec'd as they are
#   - MYSQL_ROOT_PASSWORD or MYSQL_ALLOW_EMPTY_PASSWORD (one is required on the first start),
#     MYSQL_ROOT_HOST (default %), MYSQL_DATABASE, MYSQL_USER + MYSQL_PASSWORD; each also as
#     NAME_FILE (file_env: the file's content, the two are exclusive)
#   - on the first start only (no "mysql" folder in the datadir): initialise, start a temporary
#     server with --skip-networking (TCP pings fail until init is done), create the accounts and
#     the database, then run /docker-entrypoint-initdb.d/*: *.sh sourced (or run, if executable),
#     *.sql, *.sql.gz, *.sql.xz, *.sql.zst through docker_process_sql; stop the temporary server
#   - finally exec mysqld, so it is PID 1 and shuts down cleanly on SIGTERM
# Sourcing this file only defines the helpers (docker_process_sql, mysql_note, file_env, ...), as
# the official one does. Not supported (fails with one line): MYSQL_RANDOM_ROOT_PASSWORD and
# MYSQL_ONETIME_PASSWORD. Time zone tables are not loaded (as with MYSQL_INITDB_SKIP_TZINFO).
set -eo pipefail
shopt -s nullglob

mysql_log() {
	local type="$1"
	shift
	local text="$*"
	if [ "$#" -eq 0 ]; then text="$(cat)"; fi
	printf '%s [%s] [Entrypoint]: %s\n' "$(date --rfc-3339=seconds)" "$type" "$text"
}
mysql_note() { mysql_log Note "$@"; }
mysql_warn() { mysql_log Warn "$@" >&2; }
mysql_error() {
	mysql_log ERROR "$@" >&2
	exit 1
}

# usage: file_env VAR [DEFAULT]: VAR from $VAR or from the file named by $VAR_FILE (exclusive)
file_env() {
	local var="$1" def="${2:-}"
	local fileVar="${var}_FILE"
	if [ "${!var:-}" ] && [ "${!fileVar:-}" ]; then
		mysql_error "Both $var and $fileVar are set (but are exclusive)"
	fi
	local val="$def"
	if [ "${!var:-}" ]; then
		val="${!var}"
	elif [ "${!fileVar:-}" ]; then
		val="$(<"${!fileVar}")"
	fi
	export "$var"="$val"
	unset "$fileVar"
}

_is_sourced() {
	[ "${#FUNCNAME[@]}" -ge 2 ] && [ "${FUNCNAME[0]}" = '_is_sourced' ] && [ "${FUNCNAME[1]}" = 'source' ]
}

_mysql_want_help() {
	local arg
	for arg; do
		case "$arg" in
			-'?' | --help | --print-defaults | -V | --version) return 0 ;;
		esac
	done
	return 1
}

# usage: mysql_get_config NAME SERVER-COMMAND...: the value the server would use
mysql_get_config() {
	local conf="$1"
	shift
	"$@" --verbose --help 2>/dev/null |
		awk -v conf="$conf" '$1 == conf && /^[^ \t]/ { sub(/^[^ \t]+[ \t]+/, ""); print; exit }'
}

mysql_check_config() {
	local out
	if ! out="$("$@" --verbose --help 2>&1 >/dev/null)"; then
		mysql_error $'mysqld failed while attempting to check config\n\tcommand was: '"$*"$'\n\t'"$out"
	fi
}

docker_setup_env() {
	declare -g DATADIR SOCKET DATABASE_ALREADY_EXISTS
	DATADIR="$(mysql_get_config 'datadir' "$@")"
	DATADIR="${DATADIR%/}"
	SOCKET="$(mysql_get_config 'socket' "$@")"
	file_env 'MYSQL_ROOT_HOST' '%'
	file_env 'MYSQL_DATABASE'
	file_env 'MYSQL_USER'
	file_env 'MYSQL_PASSWORD'
	file_env 'MYSQL_ROOT_PASSWORD'
	if [ -d "$DATADIR/mysql" ]; then DATABASE_ALREADY_EXISTS='true'; fi
}

docker_verify_minimum_env() {
	if [ -n "$MYSQL_RANDOM_ROOT_PASSWORD" ] || [ -n "$MYSQL_ONETIME_PASSWORD" ]; then
		mysql_error "MYSQL_RANDOM_ROOT_PASSWORD and MYSQL_ONETIME_PASSWORD are not supported by this stand-in: set MYSQL_ROOT_PASSWORD"
	fi
	if [ -z "$MYSQL_ROOT_PASSWORD" ] && [ -z "$MYSQL_ALLOW_EMPTY_PASSWORD" ]; then
		mysql_error "Database is uninitialized and password option is not specified: set MYSQL_ROOT_PASSWORD (or MYSQL_ROOT_PASSWORD_FILE, or MYSQL_ALLOW_EMPTY_PASSWORD)"
	fi
	if [ "$MYSQL_USER" = 'root' ]; then
		mysql_error "MYSQL_USER=root: root is created already, set MYSQL_ROOT_PASSWORD instead"
	fi
	if [ -n "$MYSQL_USER" ] && [ -z "$MYSQL_PASSWORD" ]; then
		mysql_error "MYSQL_USER is set without MYSQL_PASSWORD"
	fi
}

docker_create_db_directories() {
	local dir
	for dir in "$DATADIR" "$(dirname "$SOCKET")"; do
		mkdir -p "$dir"
		if [ "$(id -u)" = 0 ]; then chown mysql:mysql "$dir"; fi
	done
}

docker_init_database_dir() {
	mysql_note "Initializing database files in $DATADIR"
	shift # the server command: mariadb-install-db runs it itself
	if ! mariadb-install-db --datadir="$DATADIR" --auth-root-authentication-method=normal \
		--skip-test-db --skip-name-resolve "$@" --default-time-zone=SYSTEM \
		--loose-innodb-buffer-pool-load-at-startup=0 \
		--loose-innodb-buffer-pool-dump-at-shutdown=0 >/dev/null; then
		mysql_error "mariadb-install-db could not initialise $DATADIR (its errors are above)"
	fi
	mysql_note "Database files initialized"
}

# The client's password never reaches a command line: a [client] section on a pipe.
_mysql_passfile() {
	if [ '--dont-use-mysql-root-password' != "$1" ] && [ -n "$MYSQL_ROOT_PASSWORD" ]; then
		local p=${MYSQL_ROOT_PASSWORD//\\/\\\\}
		printf '[client]\npassword="%s"\n' "${p//\"/\\\"}"
	fi
}

# usage: docker_process_sql [--dont-use-mysql-root-password] [mysql-client-args...] (SQL on stdin)
# As root over the socket, into MYSQL_DATABASE unless the arguments name another --database.
docker_process_sql() {
	local passfileArgs=()
	if [ '--dont-use-mysql-root-password' = "$1" ]; then
		passfileArgs+=("$1")
		shift
	fi
	if [ -n "$MYSQL_DATABASE" ]; then
		set -- --database="$MYSQL_DATABASE" "$@"
	fi
	mysql --defaults-extra-file=<(_mysql_passfile "${passfileArgs[@]}") --protocol=socket \
		-uroot -hlocalhost --socket="$SOCKET" --comments "$@"
}

docker_sql_escape_string_literal() {
	local newline=$'\n'
	local escaped=${1//\\/\\\\}
	escaped="${escaped//$newline/\\n}"
	echo "${escaped//\'/\\\'}"
}

docker_temp_server_start() {
	"$@" --skip-networking --default-time-zone=SYSTEM --socket="$SOCKET" --loose-wsrep-on=OFF \
		--skip-slave-start --loose-innodb-buffer-pool-load-at-startup=0 &
	declare -g MYSQLD_PID=$!
	mysql_note "Waiting for server startup"
	local _
	for _ in {1..300}; do # 0.2 s each: one minute
		if docker_process_sql --dont-use-mysql-root-password --database=mysql <<<'SELECT 1' &>/dev/null; then
			return 0
		fi
		if ! kill -0 "$MYSQLD_PID" 2>/dev/null; then mysql_error "Unable to start server (it exited)."; fi
		sleep 0.2
	done
	mysql_error "Unable to start server in 60 s."
}

docker_temp_server_stop() {
	if ! mysqladmin --defaults-extra-file=<(_mysql_passfile) shutdown -uroot --socket="$SOCKET"; then
		mysql_error "Unable to shut down server."
	fi
	wait "$MYSQLD_PID" || true
}

docker_setup_db() {
	local rootPasswordEscaped rootCreate='' userCreate='' dbCreate=''
	rootPasswordEscaped="$(docker_sql_escape_string_literal "$MYSQL_ROOT_PASSWORD")"
	if [ -n "$MYSQL_ROOT_HOST" ] && [ "$MYSQL_ROOT_HOST" != 'localhost' ]; then
		rootCreate="CREATE USER 'root'@'${MYSQL_ROOT_HOST}' IDENTIFIED BY '${rootPasswordEscaped}';
			GRANT ALL ON *.* TO 'root'@'${MYSQL_ROOT_HOST}' WITH GRANT OPTION;
			GRANT PROXY ON ''@'%' TO 'root'@'${MYSQL_ROOT_HOST}' WITH GRANT OPTION;"
	fi
	if [ -n "$MYSQL_DATABASE" ]; then
		mysql_note "Creating database ${MYSQL_DATABASE}"
		dbCreate="CREATE DATABASE IF NOT EXISTS \`${MYSQL_DATABASE//\`/\`\`}\`;"
	fi
	if [ -n "$MYSQL_USER" ]; then
		mysql_note "Creating user ${MYSQL_USER}"
		userCreate="CREATE USER '$(docker_sql_escape_string_literal "$MYSQL_USER")'@'%'
			IDENTIFIED BY '$(docker_sql_escape_string_literal "$MYSQL_PASSWORD")';"
		if [ -n "$MYSQL_DATABASE" ]; then
			userCreate+="GRANT ALL ON \`${MYSQL_DATABASE//\`/\`\`}\`.* TO '$(docker_sql_escape_string_literal "$MYSQL_USER")'@'%';"
		fi
	fi
	# Like mysqld --initialize-insecure: root@localhost and the system account only (MariaDB's
	# installer may add root@<hostname>, root@127.0.0.1, root@::1 and anonymous users).
	local extra
	extra="$(docker_process_sql --dont-use-mysql-root-password --database=mysql -N <<<"
		SELECT CONCAT('DROP USER ', QUOTE(User), '@', QUOTE(Host), ';') FROM mysql.user
		WHERE is_role = 'N' AND NOT (User = 'root' AND Host = 'localhost')
		AND User NOT IN ('mariadb.sys', 'mysql.sys')")"
	docker_process_sql --dont-use-mysql-root-password --database=mysql <<-EOSQL
		SET @@SESSION.SQL_LOG_BIN=0;
		${extra}
		ALTER USER 'root'@'localhost' IDENTIFIED BY '${rootPasswordEscaped}';
		${rootCreate}
		${dbCreate}
		${userCreate}
		FLUSH PRIVILEGES;
	EOSQL
}

docker_process_init_files() {
	# "${mysql[@]}" for scripts written for the old entrypoint
	# shellcheck disable=SC2034
	mysql=(docker_process_sql)
	echo
	local f
	for f; do
		case "$f" in
			*.sh)
				if [ -x "$f" ]; then
					mysql_note "$0: running $f"
					"$f"
				else
					mysql_note "$0: sourcing $f"
					# shellcheck disable=SC1090
					. "$f"
				fi
				;;
			*.sql) mysql_note "$0: running $f" && docker_process_sql <"$f" ;;
			*.sql.gz) mysql_note "$0: running $f" && gunzip -c "$f" | docker_process_sql ;;
			*.sql.xz) mysql_note "$0: running $f" && xzcat "$f" | docker_process_sql ;;
			*.sql.zst) mysql_note "$0: running $f" && zstd -dc "$f" | docker_process_sql ;;
			*) mysql_warn "$0: ignoring $f" ;;
		esac
		echo
	done
}

_main() {
	if [ "${1:0:1}" = '-' ]; then
		set -- mysqld "$@"
	fi
	if [ "$1" = 'mysqld' ] || [ "$1" = 'mariadbd' ]; then
		if ! _mysql_want_help "$@"; then
			mysql_note "Entrypoint of the mysql:8.4 stand-in ($(mariadbd --version | sed 's/^.*Ver //')) started."
			mysql_check_config "$@"
			docker_setup_env "$@"
			docker_create_db_directories
			if [ "$(id -u)" = 0 ]; then
				mysql_note "Switching to dedicated user 'mysql'"
				exec setpriv --reuid=999 --regid=999 --clear-groups "${BASH_SOURCE[0]}" "$@"
			fi
			if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
				docker_verify_minimum_env
				ls /docker-entrypoint-initdb.d/ >/dev/null
				docker_init_database_dir "$@"
				mysql_note "Starting temporary server"
				docker_temp_server_start "$@"
				mysql_note "Temporary server started."
				docker_setup_db
				docker_process_init_files /docker-entrypoint-initdb.d/*
				mysql_note "Stopping temporary server"
				docker_temp_server_stop
				mysql_note "Temporary server stopped"
				echo
				mysql_note "MySQL init process done. Ready for start up."
				echo
			fi
		fi
	fi
	exec "$@"
}

if ! _is_sourced; then
	_main "$@"
fi
