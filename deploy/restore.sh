#!/usr/bin/env bash
# Restores one service's database from a folder of backup.sh, and brings the service up to date:
#   deploy/restore.sh actors|conferences|notifications FOLDER
# Then, once for all restored services, erase again every actor erased since the backup (a restore
# must never bring erased data back): README "Operating", "Restore".
#
# What it does, in order:
# 1. stops the service (every replica): nothing writes to its database or consumes for it;
# 2. mongorestore --drop: its collections are those of the backup;
# 3. rewinds its consumer group to the backup's start on the topics listed below (REWIND), so the
#    service reads again what happened since the backup on them. Each of these is handled
#    idempotently and causes no mail: copies move forward by revision only, an erasure or an
#    unsubscribe applied twice changes nothing. The topics that lead to mails (invitations,
#    answers, conferences) are not rewound: their committed offsets stay where they are, and
#    nothing is sent twice;
# 4. starts the service again.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
compose=(docker compose -f "$here/docker-compose.yml")

# The topics each service reads again since the backup (tests/unit/test_deploy.py checks the list
# against what each service consumes and what causes mails).
declare -A REWIND=(
    [actors]="quartier.erasures quartier.unsubscribes"
    [conferences]="quartier.actors quartier.teams"
    [notifications]="quartier.actors quartier.contacts"
)

service=${1:-}
folder=${2:-}
if [[ -z "$service" || -z "$folder" || -z "${REWIND[$service]+set}" ]]; then
    echo "usage: deploy/restore.sh actors|conferences|notifications BACKUP_FOLDER" >&2
    exit 2
fi
database="quartier_$service"
archive="$folder/$database.archive.gz"
[[ -s "$archive" && -s "$folder/backup.env" ]] || { echo "$archive or backup.env is missing" >&2; exit 2; }
started_at=$(sed -n 's/^BACKUP_STARTED_AT=//p' "$folder/backup.env")
[[ "$started_at" =~ ^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$ ]] || { echo "no BACKUP_STARTED_AT in backup.env" >&2; exit 2; }

echo "1/4 stopping $service"
"${compose[@]}" stop "$service"

echo "2/4 restoring $database from $archive"
"${compose[@]}" exec -T mongodb sh -ec '
    exec mongorestore --quiet --drop --archive --gzip --nsInclude "$1.*" \
        --uri "mongodb://root:${MONGO_INITDB_ROOT_PASSWORD}@127.0.0.1:27017/?authSource=admin&replicaSet=rs0"
' mongorestore "$database" < "$archive"

echo "3/4 rewinding consumer group $service to $started_at on: ${REWIND[$service]}"
# As Kafka's admin, in a throw-away container of kafka-init (it has the password in its environment).
# Kafka's datetime format has milliseconds and, without a zone, is UTC; the offsets are those of the
# first record at or after it (the earliest one when the topic no longer holds records that old:
# README "Operating" on retention).
"${compose[@]}" run --rm --no-deps -T --entrypoint /bin/sh kafka-init -ec '
    printf "%s\n" "security.protocol=SASL_PLAINTEXT" "sasl.mechanism=PLAIN" > /tmp/admin.properties
    printf "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username=\"admin\" password=\"%s\";\n" "$KAFKA_ADMIN_PASSWORD" >> /tmp/admin.properties
    group=$1; at=$2; shift 2
    for topic in "$@"; do
        /opt/kafka/bin/kafka-consumer-groups.sh --bootstrap-server kafka:9092 --command-config /tmp/admin.properties \
            --group "$group" --topic "$topic" --reset-offsets --to-datetime "$at" --execute
    done
' rewind "$service" "${started_at%Z}.000" ${REWIND[$service]}

echo "4/4 starting $service"
"${compose[@]}" up -d "$service"
cat <<DONE
$service restored from $folder. When every service to restore is restored, erase again what was
erased since the backup (a token of a user with the role data_protection):
  docker compose -f deploy/docker-compose.yml run --rm -e QUARTIER_TOKEN tools quartier erasures reapply
DONE
