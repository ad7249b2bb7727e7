"""The bulk import pages, for moderators and administrators: upload and check, the row report with
its Import button, live progress (``static/js/imports.js`` polls ``progress.json``) and Resume."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from identification.permissions import moderator_required

from ..models import BulkImport
from . import run, sheet
from .forms import ImportForm


@moderator_required
def import_list(request):
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            bulk = run.create_import(user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("submissions:import_detail", bulk.pk)
    imports = BulkImport.objects.select_related("created_by")[:50]
    return render(request, "submissions/imports.html", {"form": form, "imports": imports, "columns": sheet.COLUMNS})


@moderator_required
def import_template(request):
    response = HttpResponse(sheet.template_csv(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = 'attachment; filename="whalesite-import-template.csv"'
    return response


@moderator_required
def import_detail(request, pk):
    bulk = get_object_or_404(BulkImport, pk=pk)
    page = Paginator(bulk.rows.select_related("photo"), 200).get_page(request.GET.get("page"))
    context = {"bulk": bulk, "progress": run.progress(bulk), "page": page}
    return render(request, "submissions/import_detail.html", context)


@moderator_required
def import_progress(request, pk):
    bulk = get_object_or_404(BulkImport, pk=pk)
    return JsonResponse({"status": bulk.status, **vars(run.progress(bulk))})


@moderator_required
@require_POST
def import_start(request, pk):
    try:
        n = run.start_import(get_object_or_404(BulkImport, pk=pk), request.user)
    except ValidationError as exc:
        messages.error(request, exc.messages[0])
    else:
        messages.success(request, f"Importing {n} row{'s' if n != 1 else ''}; this page shows the progress.")
    return redirect("submissions:import_detail", pk)


@moderator_required
@require_POST
def import_resume(request, pk):
    if run.resume(get_object_or_404(BulkImport, pk=pk), request.user):
        messages.info(request, "The import goes on from the first row left.")
    return redirect("submissions:import_detail", pk)
