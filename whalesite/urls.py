from allauth.account import views as allauth_views
from django.conf import settings
from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path, re_path
from django.views.static import serve

from accounts import views as accounts_views

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("favicon.ico", views.favicon),  # browsers ask here
    # allauth (accounts/: sign-up, e-mail confirmation, password reset and change, e-mail addresses) under
    # the site's names; login and logout first: the rate-limited login, and a logout that is POST only
    path("accounts/login/", accounts_views.RateLimitedLoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/signup/", allauth_views.signup, name="signup"),
    path("accounts/", include("allauth.urls")),
    path("accounts/", include("accounts.urls")),
    path("", include("submissions.urls")),
    path("", include("identification.urls")),
    path("", include("follows.urls")),
    path("api/", include("api.urls")),
    path("django-admin/", admin.site.urls),
]


def media(request, path):
    """Uploaded photos and crops from MEDIA_ROOT (read per request, so tests may move it). Only
    with DEBUG or SERVE_MEDIA (dev and test settings); production serves media from S3 or a proxy."""
    return serve(request, path, document_root=settings.MEDIA_ROOT)


if (settings.DEBUG or getattr(settings, "SERVE_MEDIA", False)) and settings.MEDIA_URL.strip("/"):
    urlpatterns += [re_path(rf"^{settings.MEDIA_URL.strip('/')}/(?P<path>.*)$", media, name="media")]
