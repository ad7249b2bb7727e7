"""The user's content type moves from ``auth.user`` to ``accounts.user`` with the move to our own user
model (accounts 0001), on databases made before it: the row keeps its id, so the admin's log entries
and the user permissions (``add_user``, ``change_user``...) that groups and users hold keep pointing at
users, now as ``accounts.change_user``. A fresh database has no ``auth.user`` row: nothing to move.

When both rows exist (a ``migrate`` of another app ran first, and Django's post-migrate step made
``accounts.user`` beside the old one), the old one is merged into it: its permissions move over, or
their holders get the twin, and its log entries point at the new row."""

from django.db import migrations


def rows(apps, schema_editor, app_label):
    ContentType = apps.get_model("contenttypes", "ContentType")
    alias = schema_editor.connection.alias
    return ContentType.objects.using(alias).filter(app_label=app_label, model="user").first()


def move_user_content_type(apps, schema_editor):
    old = rows(apps, schema_editor, "auth")
    if old is None:
        return  # a fresh database, or already moved
    new = rows(apps, schema_editor, "accounts")
    if new is None:
        old.app_label = "accounts"
        old.save(update_fields=["app_label"])
    else:
        merge(apps, schema_editor.connection.alias, old, new)


def merge(apps, alias, old, new):
    """Everything that points at ``old`` points at ``new``; then ``old`` goes."""
    Permission = apps.get_model("auth", "Permission")
    holders = [
        (apps.get_model("auth", "Group").permissions.through, "group_id"),
        (apps.get_model("accounts", "User").user_permissions.through, "user_id"),
    ]
    for permission in Permission.objects.using(alias).filter(content_type=old):
        twin = Permission.objects.using(alias).filter(content_type=new, codename=permission.codename).first()
        if twin is None:
            permission.content_type = new
            permission.save(update_fields=["content_type"])
            continue
        for through, holder in holders:
            held = through.objects.using(alias).filter(permission=permission).values_list(holder, flat=True)
            through.objects.using(alias).bulk_create(
                [through(**{holder: pk, "permission_id": twin.pk}) for pk in held], ignore_conflicts=True
            )
        permission.delete()
    apps.get_model("admin", "LogEntry").objects.using(alias).filter(content_type=old).update(content_type=new)
    old.delete()


def move_back(apps, schema_editor):
    """Undone: the row is ``auth.user`` again (if no such row was made meanwhile)."""
    new = rows(apps, schema_editor, "accounts")
    if new is not None and rows(apps, schema_editor, "auth") is None:
        new.app_label = "auth"
        new.save(update_fields=["app_label"])


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_verified_addresses_of_existing_users"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("admin", "0003_logentry_add_action_flag_choices"),
    ]

    operations = [migrations.RunPython(move_user_content_type, move_back)]
