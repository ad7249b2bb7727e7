"""Research exports for moderators and administrators: the options page and the three streamed
downloads (the exports themselves: ``identification.research``)."""

from django.conf import settings
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone

from ..permissions import moderator_required
from ..research import capture_history, darwin_core, sightings_csv
from ..research.forms import ResearchExportForm


def _download(stream, content_type, name):
    response = StreamingHttpResponse(stream, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="whalesite-{timezone.now():%Y%m%d-%H%M}-{name}"'
    return response


def _options(request):
    """(form, options); options is None when the query string is invalid."""
    form = ResearchExportForm(request.GET)
    return form, (form.options(request.user) if form.is_valid() else None)


@moderator_required
def research_exports(request):
    return render(
        request,
        "identification/research_exports.html",
        {
            "form": ResearchExportForm(request.GET or None),
            "query": request.GET.urlencode(),
            "noncommercial": settings.EXPORT_NONCOMMERCIAL_PHOTOS,
        },
    )


@moderator_required
def export_dwca(request):
    _, options = _options(request)
    if options is None:
        return HttpResponseBadRequest("Invalid export options.")
    return _download(darwin_core.archive_stream(options), "application/zip", "dwca.zip")


@moderator_required
def export_capture(request):
    form, options = _options(request)
    if options is None:
        return HttpResponseBadRequest("Invalid export options.")
    occasion = form.cleaned_data["occasion"] or "month"
    try:
        options = capture_history.population(options)
    except capture_history.MixedSpecies as exc:
        return HttpResponseBadRequest(str(exc))
    if form.cleaned_data["format"] == "csv":
        return _download(capture_history.csv_stream(options, occasion), "text/csv", f"capture-{occasion}.csv")
    return _download(capture_history.mark_inp_stream(options, occasion), "text/plain", f"capture-{occasion}.inp")


@moderator_required
def export_sightings(request):
    _, options = _options(request)
    if options is None:
        return HttpResponseBadRequest("Invalid export options.")
    return _download(sightings_csv.csv_stream(options), "text/csv", "sightings.csv")
