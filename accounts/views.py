"""Signing up: a new account is a watcher, signed in at once."""
from django.contrib import messages
from django.contrib.auth import login
from django.shortcuts import redirect, render

from .forms import SignUpForm


def signup(request):
    if request.user.is_authenticated:
        return redirect("home")
    form = SignUpForm(request.POST) if request.method == "POST" else SignUpForm()
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="accounts.backends.EmailBackend")
        messages.success(request, "Welcome aboard! You can now submit your fluke photos.")
        return redirect("submissions:submit")
    return render(request, "registration/signup.html", {"form": form})
