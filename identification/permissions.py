"""Role checks for views: anonymous users go to the login page, signed-in users without the
permission get 403."""
from django.contrib.auth.decorators import login_required, permission_required

REVIEW_PERMISSION = "submissions.review_photo"
MANAGE_MODELS_PERMISSION = "identification.manage_models"


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
