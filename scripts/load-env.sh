# Sourced, not run: `. scripts/load-env.sh FILE` exports each KEY=value of FILE that the environment
# does not already set, so `DEBUG=true make run` wins over var/portal.env. Lines are KEY=value as
# portal-env.sh writes them (comments and blank lines skipped; one pair of surrounding quotes removed);
# nothing in the file is executed.
load_env_file() {
  local file=$1 line key value
  [ -f "$file" ] || return 0
  while IFS= read -r line || [ -n "$line" ]; do
    [[ "$line" =~ ^[[:space:]]*(#|$) ]] && continue
    line=${line#export }
    key=${line%%=*}
    [[ "$line" == *=* && "$key" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || { echo "load-env: skipping a line of $file that is not KEY=value" >&2; continue; }
    [ -n "${!key+set}" ] && continue
    value=${line#*=}
    if [[ ${#value} -ge 2 && ( "$value" == \"*\" || "$value" == \'*\' ) ]]; then
      value=${value:1:${#value}-2}
    fi
    export "$key=$value"
  done < "$file"
}
load_env_file "${1:?load-env.sh needs a file}"
