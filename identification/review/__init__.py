"""Moderators' work: the review queue and claims, decisions and consensus, curation, comparison and the
e-mails a decision sends. Views call these; domain errors raise ``ValidationError`` (a human message)
or ``PermissionDenied``."""
