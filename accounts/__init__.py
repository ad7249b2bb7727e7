"""Accounts: signing in by e-mail, signing up with a verified address (django-allauth), profiles, the
three roles (watcher, moderator, admin), a user's data download and account deletion. Users and groups
are ``django.contrib.auth``'s own models; a ``Profile`` carries what the site adds."""
