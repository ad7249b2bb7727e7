#!/usr/bin/env bash
# Migrates a database made by the code from before accounts.User (commit df4e769, auth.User) with this
# checkout's migrations, and shows that its users still sign in with their passwords and keep their
# groups, permissions and admin log entries. Usage:
#   scripts/check_user_model_migration.sh                      # a fresh SQLite file under a temp dir
#   DATABASE_URL=postgres://postgres@127.0.0.1:5432/scratch scripts/check_user_model_migration.sh
# (a PostgreSQL database named there is DROPPED and made again first).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OLD=${OLD:-df4e769}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
git archive "$OLD" | tar -x -C "$work" --one-top-level=old
export DJANGO_SETTINGS_MODULE=whalesite.settings.dev WHALESITE_VAR_DIR="$work/var"
export DATABASE_URL=${DATABASE_URL:-sqlite:///$work/existing.sqlite3}
if [[ $DATABASE_URL == postgres* ]]; then
  name=${DATABASE_URL##*/}; server=${DATABASE_URL%/*}
  psql "$server/postgres" -qc "DROP DATABASE IF EXISTS \"$name\"" -c "CREATE DATABASE \"$name\""
fi
here=$PWD
PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")"  # absolute, the venv's link kept

echo "== the old code ($OLD) migrates the database and writes users, groups, permissions, a log entry"
(cd "$work/old" && "$PY" manage.py migrate -v0 && "$PY" manage.py shell -v0 -c '
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group, Permission, User
from django.contrib.contenttypes.models import ContentType
ct = ContentType.objects.get_for_model(User)
print("user content type", ct.pk, ct.app_label, ct.model)
ops = User.objects.create_user("ops@example.org", "ops@example.org", "old-pass-ops-1", is_staff=True)
watcher = User.objects.create_user("w@example.org", "w@example.org", "old-pass-w-2")
root = User.objects.create_superuser("root@example.org", "root@example.org", "old-pass-root-3")
ops.user_permissions.add(Permission.objects.get(content_type=ct, codename="change_user"))
helpdesk = Group.objects.create(name="Helpdesk")
helpdesk.permissions.add(Permission.objects.get(content_type=ct, codename="view_user"))
ops.groups.add(helpdesk, Group.objects.get(name="Moderators"))
watcher.groups.add(Group.objects.get(name="Watchers"))
LogEntry.objects.log_actions(root.pk, [watcher], CHANGE, change_message="edited under auth.User", single_object=True)
for u in User.objects.order_by("pk"):
    print(u.pk, u.username, sorted(u.groups.values_list("name", flat=True)), sorted(p for p in u.get_all_permissions() if "user" in p))
')

echo "== this checkout migrates the same database"
cd "$here"
"$PY" manage.py migrate
"$PY" manage.py makemigrations --check --dry-run
"$PY" manage.py shell -v0 -c '
from django.contrib.admin.models import LogEntry
from django.contrib.auth import authenticate, get_user_model
from django.contrib.contenttypes.models import ContentType
User = get_user_model()
print("user model", User._meta.label, "on", User._meta.db_table)
print("user content types", list(ContentType.objects.filter(model="user").values_list("pk", "app_label")))
ok = True
for email, password in [("ops@example.org", "old-pass-ops-1"), ("w@example.org", "old-pass-w-2"), ("root@example.org", "old-pass-root-3")]:
    u = User.objects.get(email=email)
    signs_in = u.check_password(password) and authenticate(username=email, password=password) == u
    ok &= signs_in
    print(u.pk, email, "signs in:", signs_in, sorted(u.groups.values_list("name", flat=True)), sorted(p for p in u.get_all_permissions() if "user" in p))
ops = User.objects.get(email="ops@example.org")
ok &= ops.has_perm("accounts.change_user") and ops.has_perm("accounts.view_user") and ops.has_perm("submissions.review_photo")
entry = LogEntry.objects.get(change_message="edited under auth.User")
ok &= entry.get_edited_object().email == "w@example.org"
print("log entry ->", entry.content_type.app_label, entry.content_type.model, entry.get_edited_object(), entry.get_admin_url())
print("ALL KEPT" if ok else "SOMETHING WAS LOST")
raise SystemExit(0 if ok else 1)
'
