"""Accounts made before allauth signed in with their address as their username, unverified by any
e-mail. Mandatory verification would lock every one of them out, so their addresses are recorded as
verified (and primary), as an operator-made account's is (accounts.signals)."""

from django.conf import settings
from django.db import migrations


def verify_existing(apps, schema_editor):
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    EmailAddress = apps.get_model("account", "EmailAddress")
    known = set(EmailAddress.objects.values_list("user_id", flat=True))
    EmailAddress.objects.bulk_create(
        [
            EmailAddress(user_id=user.pk, email=user.email.lower(), verified=True, primary=True)
            for user in User.objects.exclude(email="").order_by("pk")
            if user.pk not in known
        ],
        ignore_conflicts=True,  # two old accounts with one address: the first keeps it
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_profile"),
        ("account", "0009_emailaddress_unique_primary_email"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(verify_existing, migrations.RunPython.noop)]
