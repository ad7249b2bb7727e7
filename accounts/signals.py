"""An account an operator makes (``createsuperuser``, the admin, ``seed_demo``, ``grant_role``) has its
address taken as verified, as every account made before allauth was: with mandatory verification it
could not sign in otherwise. Sign-ups (``AccountAdapter.save_user`` marks them) prove theirs by e-mail."""

from allauth.account.models import EmailAddress
from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def operator_made_address_is_verified(sender, instance, created, raw=False, **kwargs):
    if not created or raw or getattr(instance, "_signed_up", False) or not instance.email:
        return
    email = instance.email.lower()
    if EmailAddress.objects.filter(email__iexact=email, verified=True).exists():
        return  # another account holds it verified: this one must prove it
    EmailAddress.objects.get_or_create(user=instance, email=email, defaults={"verified": True, "primary": True})
