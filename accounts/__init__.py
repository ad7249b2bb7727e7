"""Accounts: signing in by e-mail, signing up, and the three roles (watcher, moderator, admin). A plain
module, not a Django app: users and groups are ``django.contrib.auth``'s own models."""
