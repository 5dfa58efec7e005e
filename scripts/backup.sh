#!/usr/bin/env bash
# Backs up the database and the photo blobs into $BACKUP_DIR/attendance-<UTC time>/.
#
#   scripts/backup.sh                          # BACKUP_DIR defaults to ./backups
#   BACKUP_DIR=/srv/backups scripts/backup.sh
#
# DATABASE_URL and STORAGE_URL are read as the programs read them (environment, then
# ./.env or $ENV_FILE, then the same defaults), and relative paths resolve against the
# current directory: run it from the directory the services run in.
#
#   postgres://  -> database.dump   pg_dump -Fc; restore: pg_restore --clean --no-owner -d URL FILE
#   sqlite://    -> attendance.db   online copy (sqlite3 .backup, or python3's sqlite3 backup API)
#   file://      -> blobs.tar.gz    restore: mkdir -p DIR && tar -C DIR -xzf blobs.tar.gz
#   s3://        -> blobs/          aws s3 sync, when the aws CLI is installed
#
# Exit status: 0 everything backed up; 1 error (a partial backup is left as *.partial);
# 3 the database was backed up but the S3 blobs were not (no aws CLI; the message says
# what to run). Not included: model weights (downloaded again on demand), the admin key
# and .env files (secrets: keep them in your secret store).
set -euo pipefail

die() { echo "backup: error: $*" >&2; exit 1; }
warn() { echo "backup: warning: $*" >&2; }

# --- settings -------------------------------------------------------------------------

# .env with the programs' rule (dotenvy): a variable already in the environment wins.
load_env_file() {
  local line key value
  while IFS= read -r line || [[ -n $line ]]; do
    line=${line#"${line%%[![:space:]]*}"}
    [[ -z $line || $line == \#* ]] && continue
    line=${line#export }
    [[ $line == *=* ]] || continue
    key=${line%%=*}
    key=${key%"${key##*[![:space:]]}"}
    value=${line#*=}
    value=${value#"${value%%[![:space:]]*}"}
    [[ $key =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || continue
    if [[ $value =~ ^\"(.*)\"[[:space:]]*$ || $value =~ ^\'(.*)\'[[:space:]]*$ ]]; then
      value=${BASH_REMATCH[1]}
    else
      value=${value%%[[:space:]]#*} # an unquoted value ends at " #comment"
    fi
    [[ -v $key ]] || export "$key=$value"
  done <"$1"
}
if [[ -n ${ENV_FILE:-} ]]; then
  [[ -f $ENV_FILE ]] || die "ENV_FILE=$ENV_FILE is not a file"
  load_env_file "$ENV_FILE"
elif [[ -f .env ]]; then
  load_env_file .env
fi

trim() { local s=$1; s=${s#"${s%%[![:space:]]*}"}; printf '%s' "${s%"${s##*[![:space:]]}"}"; }
# Empty means unset, as in the programs.
database_url=$(trim "${DATABASE_URL:-}")
database_url=${database_url:-sqlite://data/attendance.db?mode=rwc}
storage_url=$(trim "${STORAGE_URL:-}")
storage_url=${storage_url:-file://data/blobs}

# Percent-decoding as in a URL query (`+` is a space).
urldecode() { local s=${1//+/ }; printf '%b' "${s//%/\\x}"; }

# --- target directory -----------------------------------------------------------------

# Photos of faces and student records: readable by the owner only.
umask 077
backup_root=${BACKUP_DIR:-backups}
out="$backup_root/attendance-$(date -u +%Y%m%dT%H%M%SZ)"
work="$out.partial"
mkdir -p "$backup_root"
[[ ! -e $out ]] || die "$out already exists (two backups in the same second?)"
mkdir "$work" || die "cannot create $work (is another backup running?)"
trap '[[ ! -d $work ]] || echo "backup: incomplete backup left in $work" >&2' EXIT

# --- database -------------------------------------------------------------------------

case $database_url in
  postgres://* | postgresql://*)
    command -v pg_dump >/dev/null ||
      die "pg_dump not found: install the PostgreSQL client (the server's major version or newer)"
    pg_dump --format=custom --no-owner --dbname="$database_url" --file="$work/database.dump"
    ;;
  sqlite:*)
    db_path=${database_url#sqlite:}
    db_path=${db_path#//}
    db_path=${db_path%%\?*}
    [[ -n $db_path && $db_path != :memory: ]] || die "DATABASE_URL names an in-memory database"
    [[ -f $db_path ]] ||
      die "SQLite database $db_path not found (run from the directory the API runs in, or set DATABASE_URL)"
    db_copy="$work/attendance.db"
    # The online backup API gives a consistent copy while the API keeps writing.
    if command -v sqlite3 >/dev/null && [[ $db_copy != *\"* ]]; then
      sqlite3 "$db_path" ".backup \"$db_copy\"" || die "sqlite3 could not copy $db_path"
      check=$(sqlite3 "$db_copy" 'PRAGMA quick_check;')
    elif command -v python3 >/dev/null; then
      check=$(python3 - "$db_path" "$db_copy" <<'PY'
import sqlite3, sys
src = sqlite3.connect(sys.argv[1])
dst = sqlite3.connect(sys.argv[2])
src.backup(dst)
src.close()
print(dst.execute("PRAGMA quick_check").fetchone()[0])
dst.close()
PY
      ) || die "python3 could not copy $db_path"
    else
      die "neither the sqlite3 CLI nor python3 is installed; cannot copy $db_path safely"
    fi
    [[ $check == ok ]] || die "the copy of $db_path fails its integrity check: $check"
    ;;
  *)
    die "unsupported DATABASE_URL scheme: ${database_url%%:*}"
    ;;
esac

# --- blobs ----------------------------------------------------------------------------

blobs_missing=0
case $storage_url in
  file://*)
    blob_dir=${storage_url#file://}
    [[ -d $blob_dir ]] ||
      die "blob directory $blob_dir not found (run from the directory the services run in, or set STORAGE_URL)"
    # Hidden *.tmp files are uploads being written; they are renamed or removed shortly.
    # GNU tar exits 1 when a file changed while it was read: still a usable archive.
    rc=0
    tar -C "$blob_dir" --exclude='.*.tmp' -czf "$work/blobs.tar.gz" . || rc=$?
    if ((rc == 1)); then
      warn "some blobs changed while they were archived; the archive holds the rest"
    elif ((rc != 0)); then
      die "tar failed (exit status $rc)"
    fi
    ;;
  s3://*)
    rest=${storage_url#s3://}
    query=
    if [[ $rest == *\?* ]]; then
      query=${rest#*\?}
      rest=${rest%%\?*}
    fi
    source_url="s3://${rest%/}"
    region='' endpoint='' access_key='' secret_key=''
    IFS='&' read -ra pairs <<<"$query"
    for pair in "${pairs[@]}"; do
      name=$(urldecode "${pair%%=*}")
      value=$(urldecode "${pair#*=}")
      case $name in
        region) region=$value ;;
        endpoint) endpoint=$value ;;
        access_key) access_key=$value ;;
        secret_key) secret_key=$value ;;
      esac
    done
    sync_args=(s3 sync "$source_url" "$work/blobs" --only-show-errors)
    [[ -n $endpoint ]] && sync_args+=(--endpoint-url "$endpoint")
    [[ -n $region ]] && sync_args+=(--region "$region")
    if command -v aws >/dev/null; then
      if [[ -n $access_key ]]; then
        AWS_ACCESS_KEY_ID=$access_key AWS_SECRET_ACCESS_KEY=$secret_key aws "${sync_args[@]}"
      else
        aws "${sync_args[@]}" # the standard AWS credential chain
      fi
    else
      blobs_missing=1
      sync_args[3]="$out/blobs" # where this backup will be once complete
      creds=
      [[ -n $access_key ]] &&
        creds='AWS_ACCESS_KEY_ID=<access_key from STORAGE_URL> AWS_SECRET_ACCESS_KEY=<secret_key from STORAGE_URL> '
      {
        echo "backup: the photos in $source_url were NOT backed up: the aws CLI is not installed."
        echo "backup: install it (https://aws.amazon.com/cli/) and run:"
        echo "  ${creds}aws ${sync_args[*]}"
      } >&2
    fi
    ;;
  *)
    die "unsupported STORAGE_URL scheme: ${storage_url%%:*}"
    ;;
esac

mv "$work" "$out"
echo "backup written to $out:"
(cd "$out" && find . -maxdepth 1 -mindepth 1 -exec du -sh {} + | sed 's|\./||' | sort -k2)
if ((blobs_missing)); then
  exit 3
fi
