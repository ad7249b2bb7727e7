"""Following a whale: start, stop, the automatic follow of a matched photo's watcher, and what a
merge does to follows (they move to the whale the merged one now lives on)."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from identification.models import Individual
from identification.training.dataset import resolve_merged

from .models import Follow


@dataclass
class Followed:
    """What ``follow`` did: the whale now followed, whether the one asked for was merged into it,
    and whether the follow is new."""

    individual: Individual
    asked: Individual
    created: bool

    @property
    def redirected(self) -> bool:
        return self.individual.pk != self.asked.pk


def current(individual: Individual) -> Individual:
    """The whale as saved now (a merge may have happened since it was read), or the one it was merged into."""
    return resolve_merged(Individual.objects.select_related("merged_into").get(pk=individual.pk))


def follow(user, individual: Individual, automatic: bool = False) -> Followed:
    """``user`` follows ``individual``, or the whale it was merged into. Following twice is a no-op."""
    if not getattr(user, "is_authenticated", False):
        raise ValidationError("Sign in to follow a whale.")
    target = current(individual)
    try:
        with transaction.atomic():
            _, created = Follow.objects.get_or_create(user=user, individual=target, defaults={"automatic": automatic})
    except IntegrityError:  # the same follow, saved by a second click at the same moment
        created = False
    return Followed(individual=target, asked=individual, created=created)


def unfollow(user, individual: Individual) -> bool:
    """Stop following (the merged-into whale too). True when there was a follow to stop."""
    deleted, _ = Follow.objects.filter(user=user, individual=current(individual)).delete()
    return bool(deleted)


def is_following(user, individual: Individual) -> bool:
    if not getattr(user, "is_authenticated", False):
        return False
    return Follow.objects.filter(user=user, individual=individual).exists()


def move_follows(source: Individual, target: Individual) -> list[int]:
    """A merge: ``source``'s followers follow ``target`` instead (once, if they did already).
    Returns the ids of the users who followed ``source``, to be told of the merge."""
    follows = list(Follow.objects.select_for_update().filter(individual=source))
    already = set(Follow.objects.filter(individual=target).values_list("user_id", flat=True))
    for f in follows:
        if f.user_id in already:
            f.delete()
        else:
            Follow.objects.filter(pk=f.pk).update(individual=target)
    return [f.user_id for f in follows]
