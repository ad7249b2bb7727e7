"""Who may do what: the permission names, the check services make (``require``) and the view
decorators. The only place these are spelled. Anonymous users go to the login page; signed-in users
without the permission get 403 (views) or ``PermissionDenied`` (services)."""

from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import PermissionDenied

# the review permission is declared on submissions.Photo (the model it is about), hence its app label
REVIEW_PERMISSION = "submissions.review_photo"
MANAGE_MODELS_PERMISSION = "identification.manage_models"


def require(user, perm: str) -> None:
    """Raise ``PermissionDenied`` unless ``user`` is signed in and has ``perm``."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.has_perm(perm):
        raise PermissionDenied("You do not have permission to do this.")


def _requires(perm):
    def decorator(view):
        return login_required(permission_required(perm, raise_exception=True)(view))

    return decorator


moderator_required = _requires(REVIEW_PERMISSION)
admin_required = _requires(MANAGE_MODELS_PERMISSION)


def is_moderator(user) -> bool:
    return user.is_authenticated and user.has_perm(REVIEW_PERMISSION)


def is_model_admin(user) -> bool:
    return user.is_authenticated and user.has_perm(MANAGE_MODELS_PERMISSION)
