"""The signed-in user's API tokens page: make one (shown once), see when each was last used, revoke."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from .models import ApiToken
from .tokens import create_token, revoke_token


@login_required
@require_http_methods(["GET", "POST"])
def tokens(request):
    new_token = error = None
    if request.method == "POST":
        try:
            _, new_token = create_token(request.user, request.POST.get("name", ""))
        except ValidationError as exc:
            error = " ".join(exc.messages)
    context = {
        "tokens": ApiToken.objects.filter(user=request.user),
        "new_token": new_token,
        "error": error,
    }
    response = render(request, "api/tokens.html", context, status=400 if error else 200)
    response["Cache-Control"] = "no-store"  # the new token is in this page once
    return response


@login_required
@require_POST
def revoke(request, token_id):
    try:
        token = revoke_token(request.user, token_id)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    else:
        messages.success(request, f"Revoked “{token.name}”: it no longer works.")
    return redirect("api:tokens")
