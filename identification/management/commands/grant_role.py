"""``python manage.py grant_role EMAIL {watcher,moderator,admin}``: put a user in one role group."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from accounts.roles import ROLE_GROUPS, grant_role


class Command(BaseCommand):
    help = "Give a user (by email) the watcher, moderator or admin role."

    def add_arguments(self, parser):
        parser.add_argument("email")
        parser.add_argument("role", choices=sorted(ROLE_GROUPS))

    def handle(self, *args, email, role, **options):
        User = get_user_model()
        user = User.objects.filter(email__iexact=email).first() or User.objects.filter(username__iexact=email).first()
        if user is None:
            raise CommandError(f"no user with email {email}")
        try:
            grant_role(user, role)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"{user.email or user.username} is now a {role}."))
