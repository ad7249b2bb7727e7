"""``python manage.py grant_role EMAIL {watcher,moderator,admin}``: put a user in one role group."""
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError

ROLE_GROUPS = {"watcher": "Watchers", "moderator": "Moderators", "admin": "Admins"}
ROLE_PERMISSIONS = {
    "Watchers": [],
    "Moderators": ["submissions.review_photo"],
    "Admins": ["submissions.review_photo", "identification.manage_models"],
}


def ensure_role_groups() -> None:
    """The groups (normally made by migration identification 0003_roles; recreated if flushed)."""
    from django.contrib.auth.models import Permission

    for name, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for perm in perms:
            app_label, codename = perm.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def grant_role(user, role: str) -> None:
    """The user ends up in exactly that role's group (roles are exclusive; admins can review)."""
    if role not in ROLE_GROUPS:
        raise CommandError(f"unknown role {role!r}; choose one of {', '.join(ROLE_GROUPS)}")
    ensure_role_groups()
    group = Group.objects.get(name=ROLE_GROUPS[role])
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
