"""Django admin for sightings and photos: search, filters, read-only hashes and pipeline output."""

from django.contrib import admin
from django.db.models import Count
from django.utils.html import format_html

from .models import Photo, Sighting


class PhotoInline(admin.TabularInline):
    model = Photo
    extra = 0
    fields = ("id", "status", "individual", "original_filename", "sha256")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Sighting)
class SightingAdmin(admin.ModelAdmin):
    list_display = ("id", "observed_at", "species", "place_name", "submitted_by", "photo_count", "created_at")
    list_filter = ("species", "observed_at", "created_at")
    search_fields = ("place_name", "observer_name", "notes", "submitted_by__email")
    list_select_related = ("species", "submitted_by")
    raw_id_fields = ("submitted_by",)
    readonly_fields = ("created_at",)
    date_hierarchy = "observed_at"
    inlines = [PhotoInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_photos=Count("photos"))

    @admin.display(description="photos", ordering="_photos")
    def photo_count(self, obj):
        return obj._photos


@admin.register(Photo)
class PhotoAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "thumbnail",
        "status",
        "individual",
        "sighting",
        "original_filename",
        "box_source",
        "box_flagged",
        "attempts",
        "model_version",
        "created_at",
    )
    list_filter = (
        "status",
        "licence",
        "box_source",
        "box_flagged",
        "needs_admin",
        "upside_down",
        "failure_code",
        "model_version",
        "created_at",
    )
    search_fields = (
        "id",
        "original_filename",
        "sha256",
        "phash",
        "individual__catalogue_id",
        "sighting__submitted_by__email",
        "failure_reason",
    )
    list_select_related = ("individual", "sighting", "model_version")
    raw_id_fields = ("sighting", "individual", "duplicate_of", "claimed_by", "model_version")
    date_hierarchy = "created_at"
    # what the upload and the pipeline computed: shown, never typed in
    readonly_fields = (
        "preview",
        "sha256",
        "phash",
        "width",
        "height",
        "duplicate_of",
        "attempts",
        "batch_matches",
        "model_version",
        "crop",
        "box_confidence",
        "created_at",
        "updated_at",
        "processed_at",
        "decided_at",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "preview",
                    "sighting",
                    "image",
                    "original_filename",
                    "status",
                    "individual",
                    "reject_reason",
                    "needs_admin",
                )
            },
        ),
        ("Hashes and size", {"fields": ("sha256", "phash", "width", "height", "duplicate_of")}),
        (
            "Pipeline",
            {
                "fields": (
                    "model_version",
                    "attempts",
                    "failure_code",
                    "failure_reason",
                    "crop",
                    "box_x0",
                    "box_y0",
                    "box_x1",
                    "box_y1",
                    "box_source",
                    "box_confidence",
                    "box_flagged",
                    "upside_down",
                    "batch_matches",
                    "processed_at",
                )
            },
        ),
        ("Review", {"fields": ("claimed_by", "claimed_at", "decided_at", "created_at", "updated_at")}),
    )

    @admin.display(description="")
    def thumbnail(self, obj):
        if not obj.image:
            return ""
        return format_html('<img src="{}" style="height:40px" alt="">', obj.image.url)

    @admin.display(description="preview")
    def preview(self, obj):
        if not obj.image:
            return "-"
        return format_html('<img src="{}" style="max-height:240px" alt="">', obj.image.url)
