"""Issue 14: databases made before the site's own user model (``accounts.User`` on ``auth_user``) and
before allauth keep every user, password, group, permission and admin log entry when migrated.

The pre-state is made the way it was: the migrations are taken back to where an older database stood
(the user content type still ``auth.user``), the old rows are written with raw SQL as the old schema
held them (``auth_user``, ``auth_user_groups``, ``auth_user_user_permissions``, ``django_admin_log``),
and the real migrations run forward to the end."""

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from django.contrib.admin.models import LogEntry
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse
from django.utils import timezone

from accounts.roles import ensure_role_groups
from tests.web.helpers import PASSWORD

pytestmark = pytest.mark.django_db(transaction=True)
REPO = Path(__file__).resolve().parents[2]
BEFORE_THE_CONTENT_TYPE_MOVE = ("accounts", "0002_verified_addresses_of_existing_users")


def migrate(*targets):
    executor = MigrationExecutor(connection)
    executor.migrate(list(targets) or executor.loader.graph.leaf_nodes())
    ContentType.objects.clear_cache()


def sql(query, *params):
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        return cursor.fetchone() if query.lstrip().upper().startswith(("SELECT", "INSERT")) else None


def old_user(email, *, verified=True, staff=False):
    """A row of ``auth_user`` as ``auth.User`` wrote it, with its verified address when it had one."""
    (pk,) = sql(
        "INSERT INTO auth_user (password, is_superuser, username, first_name, last_name, email, is_staff,"
        " is_active, date_joined) VALUES (%s, false, %s, '', '', %s, %s, true, %s) RETURNING id",
        make_password(PASSWORD),
        email.lower(),
        email,
        staff,
        timezone.now(),
    )
    if verified:
        sql(
            'INSERT INTO account_emailaddress (user_id, email, verified, "primary") VALUES (%s, %s, true, true)'
            " RETURNING id",
            pk,
            email.lower(),
        )
    return pk


def old_user_content_type():
    (pk,) = sql("SELECT id FROM django_content_type WHERE app_label = 'auth' AND model = 'user'")
    return pk


def old_permission(content_type_id, codename):
    query = "SELECT id FROM auth_permission WHERE content_type_id = %s AND codename = %s"
    (pk,) = sql(query, content_type_id, codename)
    return pk


def old_grant(holder, pk, permission_pk):
    """A permission held by a group (``holder="group"``) or a user directly (``"user"``)."""
    table = {"group": "auth_group_permissions", "user": "auth_user_user_permissions"}[holder]
    sql(f"INSERT INTO {table} ({holder}_id, permission_id) VALUES (%s, %s) RETURNING id", pk, permission_pk)


def old_log_entry(by_pk, content_type_id, object_pk):
    sql(
        "INSERT INTO django_admin_log (action_time, user_id, content_type_id, object_id, object_repr, action_flag,"
        " change_message) VALUES (%s, %s, %s, %s, 'an old account', 2, 'edited under auth.User') RETURNING id",
        timezone.now(),
        by_pk,
        content_type_id,
        str(object_pk),
    )


def test_the_user_is_ours_on_djangos_tables():
    User = get_user_model()
    assert User._meta.label == "accounts.User" and User._meta.db_table == "auth_user"
    assert User.groups.through._meta.db_table == "auth_user_groups"
    assert User.user_permissions.through._meta.db_table == "auth_user_user_permissions"
    assert list(ContentType.objects.filter(model="user").values_list("app_label", flat=True)) == ["accounts"]


def test_an_older_database_keeps_its_users_passwords_groups_permissions_and_log(client):
    migrate(BEFORE_THE_CONTENT_TYPE_MOVE)
    assert not ContentType.objects.filter(app_label="accounts", model="user").exists()
    user_type = old_user_content_type()
    ops, watcher = old_user("Ops@Example.org", staff=True), old_user("watcher@example.org")
    (helpdesk,) = sql("INSERT INTO auth_group (name) VALUES ('Helpdesk') RETURNING id")
    old_grant("group", helpdesk, old_permission(user_type, "view_user"))
    sql("INSERT INTO auth_user_groups (user_id, group_id) VALUES (%s, %s) RETURNING id", ops, helpdesk)
    old_grant("user", ops, old_permission(user_type, "change_user"))
    old_log_entry(ops, user_type, watcher)

    migrate()

    moved = ContentType.objects.get(pk=user_type)
    assert (moved.app_label, moved.model) == ("accounts", "user")  # the same row: nothing points elsewhere
    assert not ContentType.objects.filter(app_label="auth", model="user").exists()
    user = get_user_model().objects.get(pk=ops)
    assert user.check_password(PASSWORD) and user.email == "Ops@Example.org"
    assert list(user.groups.values_list("name", flat=True)) == ["Helpdesk"]
    assert user.has_perm("accounts.change_user") and user.has_perm("accounts.view_user")
    assert not user.has_perm("accounts.delete_user")
    entry = LogEntry.objects.get(change_message="edited under auth.User")
    assert entry.get_edited_object() == get_user_model().objects.get(pk=watcher)
    assert entry.get_admin_url() == reverse("admin:accounts_user_change", args=[watcher])
    response = client.post(reverse("login"), {"login": "ops@example.org", "password": PASSWORD})
    assert response.status_code == 302 and int(client.session["_auth_user_id"]) == ops


def test_a_user_content_type_made_early_is_merged_into(client):
    """``migrate <another app>`` ran first: Django's post-migrate step made ``accounts.user`` (and its
    permissions) beside the old row. The old row's holders and log entries end on the new one."""
    from django.apps import apps
    from django.contrib.auth.management import create_permissions

    migrate(BEFORE_THE_CONTENT_TYPE_MOVE)
    user_type = old_user_content_type()
    create_permissions(apps.get_app_config("accounts"), verbosity=0)  # what post_migrate does
    new_type = ContentType.objects.get(app_label="accounts", model="user")
    assert new_type.pk != user_type
    ops, watcher = old_user("ops@example.org", staff=True), old_user("watcher@example.org")
    ensure_role_groups()  # a flush by an earlier test leaves no groups
    moderators = Group.objects.get(name="Moderators")
    old_grant("group", moderators.pk, old_permission(user_type, "view_user"))
    old_grant("user", ops, old_permission(user_type, "change_user"))
    sql("INSERT INTO auth_user_groups (user_id, group_id) VALUES (%s, %s) RETURNING id", watcher, moderators.pk)
    old_log_entry(ops, user_type, watcher)

    migrate()

    assert list(ContentType.objects.filter(model="user").values_list("pk", "app_label")) == [(new_type.pk, "accounts")]
    assert not Permission.objects.filter(content_type_id=user_type).exists()
    assert sorted(Permission.objects.filter(content_type=new_type).values_list("codename", flat=True)) == [
        "add_user",
        "change_user",
        "delete_user",
        "view_user",
    ]
    User = get_user_model()
    assert User.objects.get(pk=ops).has_perm("accounts.change_user")
    assert User.objects.get(pk=watcher).has_perm("accounts.view_user")
    assert User.objects.get(pk=watcher).has_perm("submissions.review_photo")  # the group's own permission stays
    entry = LogEntry.objects.get(change_message="edited under auth.User")
    assert entry.content_type_id == new_type.pk and entry.get_edited_object().pk == watcher
    response = client.post(reverse("login"), {"login": "watcher@example.org", "password": PASSWORD})
    assert response.status_code == 302 and int(client.session["_auth_user_id"]) == watcher


def test_users_from_before_allauth_survive_the_migration_and_sign_in(client):
    """A database at the state before allauth and profiles' address migration, with users (no
    address recorded), migrated forward: their addresses count as verified and they sign in."""
    migrate(("accounts", "0001_profile"), ("account", None))
    pks = [old_user(email, verified=False) for email in ("first@example.org", "Second@Example.org")]

    migrate()

    survivors = get_user_model().objects.filter(pk__in=pks).order_by("pk")
    assert [u.email for u in survivors] == ["first@example.org", "second@example.org"]  # allauth lower-cases
    assert set(EmailAddress.objects.filter(verified=True).values_list("email", flat=True)) >= {
        "first@example.org",
        "second@example.org",
    }
    response = client.post(reverse("login"), {"login": "second@example.org", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.session["_auth_user_id"]


def test_a_fresh_sqlite_database_migrates_from_scratch(tmp_path):
    """``make run``'s embedded database: every migration from nothing, with the user on ``auth_user``
    (PostgreSQL's from scratch is the test database itself)."""
    db = tmp_path / "fresh.sqlite3"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "whalesite.settings.dev", "DATABASE_URL": f"sqlite:///{db}"}
    env["WHALESITE_VAR_DIR"] = str(tmp_path)
    for command in (["migrate", "-v0"], ["makemigrations", "--check", "--dry-run"]):
        run = subprocess.run([sys.executable, "manage.py", *command], cwd=REPO, env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    with sqlite3.connect(db) as fresh:
        tables = {name for (name,) in fresh.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"auth_user", "auth_user_groups", "auth_user_user_permissions", "accounts_profile"} <= tables
        user_types = fresh.execute("SELECT app_label FROM django_content_type WHERE model = 'user'").fetchall()
        assert user_types == [("accounts",)]
        applied = fresh.execute("SELECT name FROM django_migrations WHERE app = 'accounts' ORDER BY name").fetchall()
        assert [name for (name,) in applied][-1] == "0003_user_content_type"
