"""The site search page (the box in the header); the matching is ``identification.search``."""

from django.core.paginator import Paginator
from django.shortcuts import render

from submissions.models import Photo

from ..search import clean_query, reasons, search_whales

SEARCH_PAGE = 20


def search(request):
    q = clean_query(request.GET.get("q", ""))
    page = Paginator(search_whales(q), SEARCH_PAGE).get_page(request.GET.get("page"))
    latest = Photo.objects.in_gallery().order_by("-sighting__observed_at", "-pk")
    for individual in page:
        individual.cover = latest.filter(individual=individual).first()
        individual.reasons = reasons(individual, q)
    return render(request, "identification/search.html", {"page": page, "q": q})
