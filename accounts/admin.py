"""The site's user in Django's admin, with Django's own user admin (password hashing, groups and
permissions, the add-user form), as ``auth.User`` had it before ``accounts.User``."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from .models import User

admin.site.register(User, UserAdmin)
