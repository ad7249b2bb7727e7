"""Follow and unfollow a whale, the page of what one follows, the notifications page, and the
unsubscribe link from the e-mails. The work is in ``following``, ``notices`` and ``unsubscribe``."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Count, Max, Q
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST

from identification.views.common import back
from identification.whales import whale_or_404
from submissions.models import Photo

from . import following, notices
from . import unsubscribe as links
from .models import Follow

NOTIFICATIONS_PAGE = 30


@login_required
@require_POST
def follow(request, catalogue_id):
    done = following.follow(request.user, whale_or_404(catalogue_id))
    whale = done.individual.catalogue_id
    if done.redirected:
        messages.info(request, f"{done.asked.catalogue_id} was merged into {whale}: you now follow {whale}.")
    elif done.created:
        messages.success(request, f"You follow {whale}: you will hear when it is seen again, named or merged.")
    else:
        messages.info(request, f"You already follow {whale}.")
    return redirect("identification:individual_detail", catalogue_id=whale)


@login_required
@require_POST
def unfollow(request, catalogue_id):
    individual = whale_or_404(catalogue_id)
    if following.unfollow(request.user, individual):
        messages.success(request, f"You no longer follow {individual.catalogue_id}.")
    else:
        messages.info(request, f"You were not following {individual.catalogue_id}.")
    return back(request, reverse("follows:following"))


@login_required
def following_page(request):
    gallery = Q(individual__photos__status__in=Photo.GALLERY_STATUSES)
    follows = (
        Follow.objects.filter(user=request.user)
        .select_related("individual__species")
        .annotate(
            photo_count=Count("individual__photos", filter=gallery),
            last_seen=Max("individual__photos__sighting__observed_at", filter=gallery),
        )
        .order_by("individual__catalogue_id")
    )
    return render(request, "follows/following.html", {"follows": follows})


@login_required
def notifications_page(request):
    page = Paginator(request.user.notifications.select_related("individual"), NOTIFICATIONS_PAGE).get_page(
        request.GET.get("page")
    )
    unread = {n.pk for n in page if n.read_at is None}
    notices.mark_read(request.user, unread)  # seen now; this page still shows them as new
    return render(request, "follows/notifications.html", {"page": page, "unread": unread})


@csrf_exempt  # RFC 8058: mail clients POST "List-Unsubscribe=One-Click" with no session; the token is the proof
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    answer = links.unsubscribe(token) if request.method == "POST" else links.check(token)
    status = 400 if answer.individual is None else 200
    context = {"answer": answer, "done": request.method == "POST", "token": token}
    return render(request, "follows/unsubscribe.html", context, status=status)
