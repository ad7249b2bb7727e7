"""SQLite drops a table's triggers when Django rebuilds the table, which it does to add a column with a
default (submissions 0005 adds ``Photo.licence``; identification 0010 adds ``Embedding.features``). The
gallery-change triggers of 0006 are installed again here, so ``make run``'s SQLite database keeps
logging gallery changes. PostgreSQL alters tables in place and keeps its triggers: nothing to do there."""

import importlib

from django.db import migrations

gallery_change = importlib.import_module("identification.migrations.0006_gallery_change")


def reinstall(apps, schema_editor):
    if schema_editor.connection.vendor != "sqlite":
        return
    for sql in gallery_change.SQLITE_DROP + gallery_change.SQLITE:
        schema_editor.execute(sql, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ('identification', '0010_embedding_features_suggestion_probability'),
        ('submissions', '0005_photo_licence'),
    ]

    operations = [migrations.RunPython(reinstall, migrations.RunPython.noop)]
