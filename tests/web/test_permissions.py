"""Every named URL × anonymous / watcher / moderator / admin."""

import pytest
from django.urls import reverse

from submissions.models import Photo
from tests.web.helpers import (
    ROLES,
    IndividualFactory,
    PhotoFactory,
    checked_import,
    gallery_photo,
    login,
    make_user,
    model_with_plots,
    review_setup,
    running_run,
)

pytestmark = pytest.mark.django_db

PUBLIC = {"anonymous": 200, "watcher": 200, "moderator": 200, "admin": 200}
LOGGED_IN = {"anonymous": 302, "watcher": 200, "moderator": 200, "admin": 200}
LOGGED_IN_POST = {"anonymous": 302, "watcher": 302, "moderator": 302, "admin": 302}
MODERATOR = {"anonymous": 302, "watcher": 403, "moderator": 200, "admin": 200}
MODERATOR_REDIRECT = {"anonymous": 302, "watcher": 403, "moderator": 302, "admin": 302}
ADMIN = {"anonymous": 302, "watcher": 403, "moderator": 403, "admin": 200}
ADMIN_REDIRECT = {"anonymous": 302, "watcher": 403, "moderator": 403, "admin": 302}
# the REST API signed in with the browser's session (every method and a token per role: tests/api/)
API_PRIVATE = {"anonymous": 401, "watcher": 403, "moderator": 200, "admin": 200}
API_NOT_FOUND_FOR_OTHERS = {"anonymous": 404, "watcher": 404, "moderator": 200, "admin": 200}

# (name, method, kwargs-builder key, data, expected)
MATRIX = [
    ("home", "get", None, None, PUBLIC),
    ("healthz", "get", None, None, PUBLIC),
    ("media", "get", "media", None, PUBLIC),  # unguessable names; served only when SERVE_MEDIA/DEBUG
    ("signup", "get", None, None, {"anonymous": 200, "watcher": 302, "moderator": 302, "admin": 302}),
    ("login", "get", None, None, {"anonymous": 200, "watcher": 302, "moderator": 302, "admin": 302}),
    ("logout", "post", None, None, LOGGED_IN_POST),
    # allauth (accounts/): the same login and logout views under allauth's names, then its own pages
    ("account_login", "get", None, None, {"anonymous": 200, "watcher": 302, "moderator": 302, "admin": 302}),
    ("account_logout", "post", None, None, LOGGED_IN_POST),
    ("account_signup", "get", None, None, {"anonymous": 200, "watcher": 302, "moderator": 302, "admin": 302}),
    ("account_inactive", "get", None, None, PUBLIC),
    ("account_email_verification_sent", "get", None, None, PUBLIC),
    ("account_confirm_email", "get", "email_key", None, PUBLIC),  # an unknown key: "expired or invalid"
    ("account_reset_password", "get", None, None, PUBLIC),
    ("account_reset_password_done", "get", None, None, PUBLIC),
    ("account_reset_password_from_key", "get", "reset_key", None, PUBLIC),  # a bad key: "Bad Token"
    ("account_reset_password_from_key_done", "get", None, None, PUBLIC),
    ("account_confirm_login_code", "get", None, None, LOGGED_IN_POST),  # login by code is off: redirected
    ("account_email", "get", None, None, LOGGED_IN),
    ("account_change_password", "get", None, None, LOGGED_IN),
    ("account_set_password", "get", None, None, LOGGED_IN_POST),  # has a password: on to change it
    ("account_reauthenticate", "get", None, None, LOGGED_IN),
    ("account_request_reauthentication_code", "get", None, None, LOGGED_IN),
    ("account_confirm_reauthentication_code", "get", None, None, LOGGED_IN_POST),
    ("accounts:profile", "get", None, None, LOGGED_IN),
    ("accounts:download_data", "post", None, None, LOGGED_IN),
    ("accounts:delete", "get", None, None, LOGGED_IN),
    ("identification:individuals", "get", None, None, PUBLIC),
    ("identification:individual_detail", "get", "individual", None, PUBLIC),
    ("identification:individual_track", "get", "individual", None, PUBLIC),  # positions rounded: test_maps.py
    ("submissions:sightings_map", "get", None, None, PUBLIC),
    ("submissions:sightings", "get", None, None, PUBLIC),
    ("submissions:submit", "get", None, None, LOGGED_IN),
    ("submissions:exif", "post", None, "photo", {"anonymous": 302, "watcher": 200, "moderator": 200, "admin": 200}),
    ("submissions:species", "post", None, "photo", {"anonymous": 302, "watcher": 200, "moderator": 200, "admin": 200}),
    ("submissions:my_sightings", "get", None, None, LOGGED_IN),
    ("submissions:my_sightings_status", "get", None, None, LOGGED_IN),
    ("identification:review_queue", "get", None, None, MODERATOR),
    ("identification:review_start", "post", None, None, MODERATOR_REDIRECT),
    ("identification:review_claim", "post", "photo", None, MODERATOR_REDIRECT),
    ("identification:failed_photos", "get", None, None, MODERATOR),
    ("identification:review_photo", "get", "photo", None, MODERATOR),
    ("identification:review_decide", "post", "photo", "confirm", MODERATOR_REDIRECT),
    ("identification:correct_species", "post", "photo", None, MODERATOR_REDIRECT),
    ("identification:retry", "post", "failed", None, MODERATOR_REDIRECT),
    ("identification:dashboard", "get", None, None, ADMIN),
    ("identification:start_training", "post", None, "train", ADMIN_REDIRECT),
    ("identification:measure_step_time", "post", None, "measure", ADMIN_REDIRECT),
    ("identification:run_progress", "get", "run", None, ADMIN),
    ("identification:cancel_run", "post", "run", None, ADMIN_REDIRECT),
    ("identification:resend_run", "post", "run", None, ADMIN_REDIRECT),
    ("identification:promote", "post", "version", None, ADMIN_REDIRECT),
    ("identification:rollback", "post", None, None, ADMIN_REDIRECT),
    ("identification:model_plot", "get", "plot", None, ADMIN),
    ("identification:model_list", "get", None, None, ADMIN),
    ("identification:model_detail", "get", "version", None, ADMIN),
    ("identification:evaluate_model", "post", "version", None, ADMIN_REDIRECT),
    ("identification:retrain_localizer", "post", None, None, ADMIN_REDIRECT),
    ("identification:retrain_species_classifier", "post", None, None, ADMIN_REDIRECT),
    ("identification:run_detail", "get", "run", None, ADMIN),
    ("identification:training_data", "get", None, None, ADMIN),
    ("identification:training_data_update", "post", None, None, ADMIN_REDIRECT),
    ("identification:export_kaggle", "get", None, None, ADMIN),
    ("identification:export_coco", "get", None, None, ADMIN),
    ("identification:research_exports", "get", None, None, MODERATOR),
    ("identification:export_dwca", "get", None, None, MODERATOR),
    ("identification:export_capture", "get", None, None, MODERATOR),
    ("identification:export_sightings", "get", None, None, MODERATOR),
    ("identification:health", "get", None, None, ADMIN),
    ("identification:health_retry", "post", "failed", None, ADMIN_REDIRECT),
    ("identification:retry_all_failed", "post", None, None, ADMIN_REDIRECT),
    ("identification:photo_detail", "get", "photo", None, MODERATOR),  # a watcher sees only their own photos
    ("identification:split", "post", "gallery", None, MODERATOR_REDIRECT),
    ("identification:merge", "post", "individual", "merge", MODERATOR_REDIRECT),
    ("identification:disputed", "get", None, None, ADMIN),
    ("identification:undo", "post", None, None, MODERATOR_REDIRECT),
    ("identification:correct_box", "post", "photo", "box", MODERATOR_REDIRECT),
    ("identification:rename", "post", "individual", "nickname", MODERATOR_REDIRECT),
    ("identification:search", "get", None, None, PUBLIC),
    ("follows:following", "get", None, None, LOGGED_IN),
    ("follows:notifications", "get", None, None, LOGGED_IN),
    ("follows:follow", "post", "individual", None, LOGGED_IN_POST),
    ("follows:unfollow", "post", "individual", None, LOGGED_IN_POST),
    ("follows:unsubscribe", "get", "unsubscribe", None, PUBLIC),  # the signed token is the proof
    ("api:api-root", "get", None, None, PUBLIC),
    ("api:species-list", "get", None, None, PUBLIC),
    ("api:species-detail", "get", "species", None, PUBLIC),
    ("api:individual-list", "get", None, None, PUBLIC),
    ("api:individual-detail", "get", "individual", None, PUBLIC),
    ("api:sighting-list", "get", None, None, PUBLIC),
    ("api:sighting-detail", "get", "api_sighting", None, API_NOT_FOUND_FOR_OTHERS),
    ("api:photo-list", "get", None, None, PUBLIC),
    ("api:photo-detail", "get", "api_photo", None, API_PRIVATE),
    ("api:photo-decision", "post", "api_photo", "api_confirm", API_PRIVATE),
    ("api:schema", "get", None, None, PUBLIC),
    ("api:docs", "get", None, None, PUBLIC),
    ("api:tokens", "get", None, None, LOGGED_IN),
    ("api:revoke_token", "post", "token", None, LOGGED_IN_POST),
    ("submissions:imports", "get", None, None, MODERATOR),
    ("submissions:import_template", "get", None, None, MODERATOR),
    ("submissions:import_detail", "get", "import", None, MODERATOR),
    ("submissions:import_progress", "get", "import", None, MODERATOR),
    ("submissions:import_start", "post", "import", None, MODERATOR_REDIRECT),
    ("submissions:import_resume", "post", "import", None, MODERATOR_REDIRECT),
    # no active model in this matrix: allowed roles get 404 (the PNG itself: tests/web/test_review_depth.py)
    (
        "identification:explain",
        "get",
        "explain",
        None,
        {"anonymous": 302, "watcher": 403, "moderator": 404, "admin": 404},
    ),
    (
        "identification:matched_points",
        "get",
        "explain",
        None,
        {"anonymous": 302, "watcher": 403, "moderator": 404, "admin": 404},
    ),
]


def test_matrix_covers_every_named_url():
    from django.urls import get_resolver

    def names(resolver, prefix=""):
        for p in resolver.url_patterns:
            if hasattr(p, "url_patterns"):
                ns = getattr(p, "namespace", None)
                if ns == "admin":
                    continue
                yield from names(p, f"{prefix}{ns}:" if ns else prefix)
            elif p.name:
                yield prefix + p.name

    assert set(names(get_resolver())) == {row[0] for row in MATRIX}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name,method,target,data,expected", MATRIX, ids=[row[0] for row in MATRIX])
def test_permission_matrix(client, role, name, method, target, data, expected):
    from api.tokens import create_token
    from follows.unsubscribe import make_token
    from tests.factories import jpeg_bytes, upload

    photo, individuals, _ = review_setup()
    individual = IndividualFactory()
    in_gallery = gallery_photo(individual)
    failed = PhotoFactory(status=Photo.Status.FAILED, failure_code="corrupt")
    run = running_run()
    version = model_with_plots()
    bulk = checked_import()
    kwargs = {
        None: {},
        "individual": {"catalogue_id": individual.catalogue_id},
        "photo": {"photo_id": photo.pk},
        "failed": {"photo_id": failed.pk},
        "run": {"run_id": run.pk},
        "version": {"version_id": version.pk},
        "plot": {"version_id": version.pk, "name": "loss"},
        "gallery": {"photo_id": in_gallery.pk},
        "media": {"path": in_gallery.image.name},
        "explain": {"photo_id": photo.pk, "individual_id": individuals[0].pk},
        "unsubscribe": {"token": make_token(in_gallery.sighting.submitted_by_id, individual.pk)},
        "species": {"pk": individual.species_id},
        "api_sighting": {"pk": photo.sighting_id},
        "api_photo": {"pk": photo.pk},
        "token": {"token_id": create_token(make_user("watcher", "other@example.org"), "other's")[0].pk},
        "import": {"pk": bulk.pk},
        "email_key": {"key": "no-such-key"},
        "reset_key": {"uidb36": "zz", "key": "bad-key"},
    }[target]
    payload = {
        None: {},
        "photo": {"photo": upload("a.jpg", jpeg_bytes(seed=1))},
        "confirm": {"action": "confirm", "individual": individuals[0].pk},
        "train": {"epochs": 2, "arch": "resnet18", "image_size": 128, "fine_tune": "on"},
        "measure": {"arch": "resnet18", "image_size": 128},
        "merge": {"target": individuals[0].catalogue_id},
        "box": {"x0": 10, "y0": 10, "x1": 200, "y1": 120},
        "nickname": {"nickname": "Matrix"},
        "api_confirm": {"action": "confirm", "individual": individuals[0].catalogue_id},
    }[data]
    login(client, make_user(role))
    url = reverse(name, kwargs=kwargs)
    response = getattr(client, method)(url, payload)
    assert response.status_code == expected[role], (name, role, response.status_code)
    if (
        response.status_code == 302
        and role == "anonymous"
        and name not in ("logout", "signup", "login", "account_logout")
    ):
        assert response["Location"].startswith(reverse("login"))
