# Source me (bash/zsh):  . tests/tools/env.sh
# Puts the migration tools installed by tests/tools/install.sh on PATH and
# exports what they need. Safe to source more than once; does not install.
#
#   PGMQ_CODEGEN_TOOLS          the tool cache (default ~/.cache/pgmq-codegen/tools)
#   PGMQ_CODEGEN_TOOLS_STATUS   its status.txt: "<tool> ok <version>" | "<tool> failed <reason>"
#   PGMQ_CODEGEN_FLYWAY_CLASSPATH, PGMQ_CODEGEN_LIQUIBASE_CLASSPATH
#                               java -cp values (jars incl. the PostgreSQL JDBC driver),
#                               empty when that tool is not installed
export PGMQ_CODEGEN_TOOLS="${PGMQ_CODEGEN_TOOLS:-$HOME/.cache/pgmq-codegen/tools}"
export PGMQ_CODEGEN_TOOLS_STATUS="$PGMQ_CODEGEN_TOOLS/status.txt"

case ":$PATH:" in
  *":$PGMQ_CODEGEN_TOOLS/bin:"*) ;;
  *) export PATH="$PGMQ_CODEGEN_TOOLS/bin:$PATH" ;;
esac

# Java CLIs (wrappers in bin/ find their jars themselves; these are for callers
# that want to run the JVM directly).
_pgmq_cp() {  # _pgmq_cp <bin name> -> "<versioned dir>/lib/*" or ""
  local _t
  _t=$(readlink -f "$PGMQ_CODEGEN_TOOLS/bin/$1" 2>/dev/null) || _t=
  if [ -n "$_t" ] && [ -d "${_t%/*}/lib" ]; then printf '%s/lib/*' "${_t%/*}"; fi
}
export PGMQ_CODEGEN_FLYWAY_CLASSPATH="$(_pgmq_cp flyway)"
export PGMQ_CODEGEN_LIQUIBASE_CLASSPATH="$(_pgmq_cp liquibase)"
unset -f _pgmq_cp

# Tool defaults for tests (kept if the caller already set them):
# liquibase: no banner, no analytics call-home (only package registries are reachable)
export LIQUIBASE_SHOW_BANNER="${LIQUIBASE_SHOW_BANNER:-false}"
export LIQUIBASE_ANALYTICS_ENABLED="${LIQUIBASE_ANALYTICS_ENABLED:-false}"
# dbmate: don't pg_dump the schema into ./db/schema.sql after every up/rollback
export DBMATE_NO_DUMP_SCHEMA="${DBMATE_NO_DUMP_SCHEMA:-true}"
# supabase: no telemetry / update check
export SUPABASE_TELEMETRY_DISABLED="${SUPABASE_TELEMETRY_DISABLED:-1}"
export SUPABASE_NO_UPDATE_NOTIFIER="${SUPABASE_NO_UPDATE_NOTIFIER:-1}"
