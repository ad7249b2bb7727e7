"""``python manage.py grant_role EMAIL {watcher,moderator,admin}``: put a user in one role group."""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

ROLE_GROUPS = {"watcher": "Watchers", "moderator": "Moderators", "admin": "Admins"}


def grant_role(user, role: str) -> None:
    """The user ends up in exactly that role's group (roles are exclusive; admins can review)."""
    try:
        group = Group.objects.get(name=ROLE_GROUPS[role])
    except KeyError:
        raise CommandError(f"unknown role {role!r}; choose one of {', '.join(ROLE_GROUPS)}") from None
    except Group.DoesNotExist:
        raise CommandError("role groups are missing: run `python manage.py migrate` first") from None
    user.groups.remove(*Group.objects.filter(name__in=ROLE_GROUPS.values()))
    user.groups.add(group)
    if role == "admin" and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])


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
        grant_role(user, role)
        self.stdout.write(self.style.SUCCESS(f"{user.email or user.username} is now a {role}."))
