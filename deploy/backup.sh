#!/usr/bin/env bash
# Backs up each service database of the compose stack with mongodump, one gzip archive per database,
# into a new folder readable by its owner only:
#   deploy/backup.sh [FOLDER]        (default: deploy/backups/<UTC time>)
# The folder's backup.env records when the backup began (BACKUP_STARTED_AT): restore.sh rewinds the
# restored service's consumer group to it. The archives hold personal data (names, addresses): keep
# them as the database itself is kept, and delete them by the retention the city has decided.
# README "Operating" says what a restore means for the event log.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
compose=(docker compose -f "$here/docker-compose.yml")
databases=(quartier_actors quartier_conferences quartier_notifications)

started_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)
folder=${1:-"$here/backups/$(date -u +%Y%m%dT%H%M%SZ)"}
umask 077
mkdir -p "$folder"

for database in "${databases[@]}"; do
    # As root, inside the mongodb container: the password stays in that container's environment
    # (MONGO_INITDB_ROOT_PASSWORD) and never appears on this host's command line.
    "${compose[@]}" exec -T mongodb sh -ec '
        exec mongodump --quiet --archive --gzip --db "$1" \
            --uri "mongodb://root:${MONGO_INITDB_ROOT_PASSWORD}@127.0.0.1:27017/?authSource=admin&replicaSet=rs0"
    ' mongodump "$database" > "$folder/$database.archive.gz"
    echo "backed up $database: $(du -h "$folder/$database.archive.gz" | cut -f1)"
done

printf 'BACKUP_STARTED_AT=%s\n' "$started_at" > "$folder/backup.env"
echo "backup in $folder (started $started_at)"
