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
        "recent": gallery.newest_per_individual()
        .select_related("individual", "sighting__species")
        .order_by(F("decided_at").desc(nulls_last=True), "-pk")[:8],
    }
    return render(request, "home.html", context)


@never_cache
@require_GET
def healthz(request):
    """Readiness for the compose healthcheck: 503 when the database is down (nothing works without it);
    a broker outage is reported as "degraded" with 200, since uploads are still saved and queued when it
    is back (``identification.pipeline.queue``), so restarting the web server would not help."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # noqa: BLE001 - any database failure means "not ready"
        return JsonResponse({"status": "error", "database": str(exc)[:200], "broker": broker_status()}, status=503)
    broker = broker_status()
    return JsonResponse({"status": "ok" if broker == "ok" else "degraded", "database": "ok", "broker": broker})


def broker_status() -> str:
    """ "ok", or why the broker cannot be reached (one connection attempt, about two seconds at most)."""
    from whalesite.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
    except Exception as exc:  # noqa: BLE001 - any failure means the broker is not usable
        return f"unreachable: {type(exc).__name__}: {str(exc)[:160]}"
    return "ok"


def favicon(request):
    """Browsers ask /favicon.ico whatever the page says; resolved per request (the hashed static name
    exists only after collectstatic)."""
    return redirect(static("favicon.svg"), permanent=True)
