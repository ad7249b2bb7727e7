from django.db import connection
from django.db.models import F
from django.http import JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from identification.models import Individual
from identification.training.progress import setup_status
from submissions.models import Photo, Sighting


def home(request):
    gallery = Photo.objects.in_gallery()
    context = {
        "setup": setup_status(),
        "counts": {
            "individuals": Individual.objects.active().count(),
            "photos": gallery.count(),
            "sightings": Sighting.objects.filter(photos__in=gallery).distinct().count(),
        },
        "recent": gallery.newest_per_individual().select_related("individual", "sighting__species")
        .order_by(F("decided_at").desc(nulls_last=True), "-pk")[:8],
    }
    return render(request, "home.html", context)


@never_cache
@require_GET
def healthz(request):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any database failure means "not ready"
        return JsonResponse({"status": "error", "database": str(exc)[:200]}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})



def favicon(request):
    """Browsers ask /favicon.ico whatever the page says; resolved per request (the hashed static name
    exists only after collectstatic)."""
    return redirect(static("favicon.svg"), permanent=True)
