#!/bin/bash
# Least-privilege accounts for docker-compose.yml (grants as in the service's process contract).
# The mysql image's entrypoint *sources* this file (it is deliberately not executable) once, on the
# first start with an empty data volume, after it has created MYSQL_DATABASE; docker_process_sql is
# the entrypoint's own helper (root over the local socket, password never on a command line).
# Changing passwords in .env later needs `docker compose down -v` (drops the data) or ALTER USER.

: "${MYSQL_DATABASE:?}" "${DATABASE_USER:?}" "${DATABASE_PASSWORD:?}"
: "${MIGRATE_DATABASE_USER:?}" "${MIGRATE_DATABASE_PASSWORD:?}"

# SQL string literal: double backslashes and single quotes.
_app_sql_str() {
	local s=${1//\\/\\\\}
	printf '%s' "${s//\'/\'\'}"
}

mysql_note "Creating DML-only user '${DATABASE_USER}' and DDL user '${MIGRATE_DATABASE_USER}' on ${MYSQL_DATABASE}"
docker_process_sql --database=mysql <<-EOSQL
	CREATE USER '$(_app_sql_str "$DATABASE_USER")'@'%' IDENTIFIED BY '$(_app_sql_str "$DATABASE_PASSWORD")';
	GRANT SELECT, INSERT, UPDATE, DELETE ON \`${MYSQL_DATABASE//\`/\`\`}\`.* TO '$(_app_sql_str "$DATABASE_USER")'@'%';
	CREATE USER '$(_app_sql_str "$MIGRATE_DATABASE_USER")'@'%' IDENTIFIED BY '$(_app_sql_str "$MIGRATE_DATABASE_PASSWORD")';
	GRANT CREATE, ALTER, INDEX, DROP, REFERENCES, SELECT, INSERT, UPDATE, DELETE
	  ON \`${MYSQL_DATABASE//\`/\`\`}\`.* TO '$(_app_sql_str "$MIGRATE_DATABASE_USER")'@'%';
EOSQL
