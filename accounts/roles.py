"""The three roles and the groups that carry them. Roles are exclusive; an admin can also review.
The groups are made by migration identification 0003_roles and recreated here when missing (a
flushed database)."""

from django.contrib.auth.models import Group, Permission

from identification.permissions import MANAGE_MODELS_PERMISSION, REVIEW_PERMISSION

ROLE_GROUPS = {"watcher": "Watchers", "moderator": "Moderators", "admin": "Admins"}
ROLE_PERMISSIONS = {
    "Watchers": [],
    "Moderators": [REVIEW_PERMISSION],
    "Admins": [REVIEW_PERMISSION, MANAGE_MODELS_PERMISSION],
}


def ensure_role_groups() -> None:
    """The groups with their permissions (normally made by migration identification 0003_roles)."""
    for name, perms in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        for perm in perms:
            app_label, codename = perm.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def grant_role(user, role: str) -> None:
    """The user ends up in exactly that role's group (roles are exclusive; admins can review)."""
    if role not in ROLE_GROUPS:
        raise ValueError(f"unknown role {role!r}; choose one of {', '.join(ROLE_GROUPS)}")
    ensure_role_groups()
    group = Group.objects.get(name=ROLE_GROUPS[role])
    user.groups.remove(*Group.objects.filter(name__in=ROLE_GROUPS.values()))
    user.groups.add(group)
    if role == "admin" and not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
