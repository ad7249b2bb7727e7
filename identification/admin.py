"""Django admin for the catalogue, model versions, training and the decision audit log.

The moderation workflow lives in the site's own pages; the admin is for looking things up and
fixing data. Audit rows (decisions) and what the workers write (embeddings, suggestions, run
progress) are read-only here.
"""

from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Count
from django.utils.html import format_html

from submissions.admin import PhotoAdmin as UploadPhotoAdmin
from submissions.models import Photo

from .models import Decision, Embedding, Individual, ModelVersion, Species, Suggestion, TrainingExample, TrainingRun
from .review.curation import retry_photo


@admin.register(Species)
class SpeciesAdmin(admin.ModelAdmin):
    list_display = ("common_name", "scientific_name", "scientific_name_id", "code", "individual_count")
    search_fields = ("common_name", "scientific_name", "code")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_individuals=Count("individuals"))

    @admin.display(description="individuals", ordering="_individuals")
    def individual_count(self, obj):
        return obj._individuals


@admin.register(Individual)
class IndividualAdmin(admin.ModelAdmin):
    list_display = ("catalogue_id", "nickname", "species", "photo_count", "merged_into", "created_at", "created_by")
    list_filter = ("species", ("merged_into", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("catalogue_id", "nickname", "created_by__email")
    list_select_related = ("species", "merged_into", "created_by")
    raw_id_fields = ("merged_into", "created_by")
    readonly_fields = ("created_at",)
    date_hierarchy = "created_at"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_photos=Count("photos"))

    @admin.display(description="photos", ordering="_photos")
    def photo_count(self, obj):
        return obj._photos


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = (
        "name",
        "is_active",
        "gallery_ready",
        "map5",
        "new_threshold",
        "created_at",
        "promoted_at",
        "promoted_by",
    )
    list_filter = ("is_active", "gallery_ready", "created_at")
    search_fields = ("name", "artifact_dir")
    list_select_related = ("promoted_by",)
    # promotion re-embeds the gallery first: use the dashboard (services.promote_model_version), not a checkbox
    readonly_fields = (
        "name",
        "artifact_dir",
        "config",
        "metrics",
        "history",
        "training_snapshot",
        "new_threshold",
        "is_active",
        "gallery_ready",
        "created_at",
        "promoted_at",
        "promoted_by",
    )

    @admin.display(description="MAP@5")
    def map5(self, obj):
        value = (obj.metrics or {}).get("map5")
        return f"{value:.3f}" if isinstance(value, (int, float)) else "-"


@admin.register(Embedding)
class EmbeddingAdmin(admin.ModelAdmin):
    list_display = ("photo", "model_version", "dimensions", "created_at")
    list_filter = ("model_version",)
    search_fields = ("photo__id", "photo__original_filename")
    list_select_related = ("photo", "model_version")
    readonly_fields = ("photo", "model_version", "dimensions", "created_at")
    exclude = ("vector",)

    @admin.display(description="dims")
    def dimensions(self, obj):
        return len(bytes(obj.vector)) // 4

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Suggestion)
class SuggestionAdmin(admin.ModelAdmin):
    list_display = ("photo", "rank", "candidate", "score", "model_version")
    list_filter = ("model_version", "rank")
    search_fields = ("photo__id", "individual__catalogue_id")
    list_select_related = ("photo", "individual", "model_version")
    readonly_fields = ("photo", "model_version", "rank", "individual", "score", "best_photo")

    @admin.display(description="candidate")
    def candidate(self, obj):
        return obj.individual or "new individual"

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    """The audit log: never edited or deleted here."""

    list_display = (
        "created_at",
        "action",
        "photo",
        "individual",
        "reject_reason",
        "moderator",
        "model_version",
        "undone_at",
    )
    list_filter = ("action", "reject_reason", ("undone_at", admin.EmptyFieldListFilter), "created_at")
    search_fields = ("moderator__email", "individual__catalogue_id", "photo__id")
    list_select_related = ("photo", "individual", "moderator", "model_version")
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(TrainingExample)
class TrainingExampleAdmin(admin.ModelAdmin):
    list_display = ("photo", "individual", "status", "used_by", "created_at")
    list_filter = ("status", "created_at")
    search_fields = ("individual__catalogue_id", "photo__id")
    list_select_related = ("photo", "individual", "used_by")
    raw_id_fields = ("photo", "individual", "used_by")
    readonly_fields = ("created_at",)
    actions = ["exclude_examples", "queue_examples"]

    @admin.action(description="Exclude from training")
    def exclude_examples(self, request, queryset):
        n = queryset.update(status=TrainingExample.Status.EXCLUDED)
        self.message_user(request, f"{n} example(s) excluded.")

    @admin.action(description="Queue for the next run")
    def queue_examples(self, request, queryset):
        n = queryset.update(status=TrainingExample.Status.QUEUED, used_by=None)
        self.message_user(request, f"{n} example(s) queued.")


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "status",
        "options_summary",
        "started_by",
        "created_at",
        "started_at",
        "finished_at",
        "model_version",
        "cancel_requested",
    )
    list_filter = ("status", "cancel_requested", "created_at")
    search_fields = ("id", "error", "started_by__email", "model_version__name")
    list_select_related = ("started_by", "model_version")
    # runs are started and cancelled from the dashboard (services), which queue the task
    readonly_fields = (
        "status",
        "options",
        "progress",
        "log_tail",
        "metrics",
        "error",
        "started_by",
        "model_version",
        "created_at",
        "started_at",
        "finished_at",
    )
    exclude = ("log",)

    @admin.display(description="options")
    def options_summary(self, obj):
        o = obj.options or {}
        return f"{o.get('arch', '?')} {o.get('image_size', '?')}px x{o.get('epochs', '?')}"

    @admin.display(description="log (last lines)")
    def log_tail(self, obj):
        lines = (obj.log or "").splitlines()[-40:]
        return format_html("<pre style='white-space:pre-wrap'>{}</pre>", "\n".join(lines))

    def has_add_permission(self, request):
        return False


# The photo admin belongs to submissions; the pipeline action on it belongs here, so that submissions
# never imports identification's services (identification's admin is loaded first: INSTALLED_APPS order).
admin.site.unregister(Photo)


@admin.register(Photo)
class PhotoAdmin(UploadPhotoAdmin):
    actions = ["retry_processing"]

    @admin.action(description="Retry processing (failed or stuck photos)")
    def retry_processing(self, request, queryset):
        done = skipped = 0
        for photo in queryset:
            try:
                retry_photo(photo=photo, actor=request.user)
                done += 1
            except (ValidationError, PermissionDenied):
                skipped += 1
        self.message_user(request, f"{done} photo(s) queued again; {skipped} skipped (not failed or stuck).")
