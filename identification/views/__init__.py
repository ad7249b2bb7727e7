"""The site's pages, one module per audience: ``catalogue`` (everyone), ``review`` and ``curation``
(moderators), ``models`` and ``ops`` (administrators). Views parse the request, call a service and
render; the rules live in the service packages."""
