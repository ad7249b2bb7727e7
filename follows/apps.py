from django.apps import AppConfig


class FollowsConfig(AppConfig):
    """Following whales: who follows which individual, and the notices they are sent."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "follows"
    verbose_name = "Follows and notifications"
