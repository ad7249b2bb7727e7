"""``manage.py import_sheet SHEET ZIP --user EMAIL [--start]``: the import page from the command line,
for catalogues too large to upload through a browser. Checks every row and prints each error; with
``--start`` imports the valid rows on the workers (``--wait`` follows the progress). ``--resume ID``
sends a stalled import's next chunk again."""

import time

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from submissions.imports import run
from submissions.models import BulkImport, ImportRow


class Command(BaseCommand):
    help = "Bulk-import a sheet (CSV/XLSX) and a ZIP of photos (docs/IMPORT.md)."

    def add_arguments(self, parser):
        parser.add_argument("sheet", nargs="?")
        parser.add_argument("archive", nargs="?")
        parser.add_argument("--user", required=True, help="E-mail or username of the moderator importing")
        parser.add_argument("--start", action="store_true", help="Import the valid rows once checked")
        parser.add_argument("--wait", action="store_true", help="Print the progress until the import is done")
        parser.add_argument("--resume", type=int, metavar="ID", help="Send a running import's next chunk again")

    def handle(self, *args, **opts):
        user = self._user(opts["user"])
        try:
            if opts["resume"]:
                bulk = BulkImport.objects.filter(pk=opts["resume"]).first()
                if bulk is None or not run.resume(bulk, user):
                    raise CommandError(f"Import {opts['resume']} is not running.")
            else:
                bulk = self._check(user, opts)
                if opts["start"]:
                    self.stdout.write(f"importing {run.start_import(bulk, user)} row(s) on the workers")
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        if opts["wait"] and bulk.status != BulkImport.Status.CHECKED:
            self._follow(bulk)

    def _user(self, name):
        users = get_user_model().objects
        user = users.filter(email__iexact=name).first() or users.filter(username=name).first()
        if user is None:
            raise CommandError(f"No user {name!r}.")
        return user

    def _check(self, user, opts) -> BulkImport:
        if not (opts["sheet"] and opts["archive"]):
            raise CommandError("Give the sheet and the ZIP (or --resume ID).")
        with open(opts["sheet"], "rb") as sheet, open(opts["archive"], "rb") as archive:
            bulk = run.create_import(user=user, sheet=File(sheet, name=opts["sheet"]), archive=File(archive))
        for row in bulk.rows.filter(status=ImportRow.Status.INVALID):
            self.stdout.write(f"line {row.number}: {' '.join(row.errors)}")
        p = run.progress(bulk)
        self.stdout.write(f"import {bulk.pk}: {p.left} valid row(s), {p.skipped} with errors")
        return bulk

    def _follow(self, bulk) -> None:
        while True:
            bulk.refresh_from_db()
            p = run.progress(bulk)
            left = f", about {p.seconds_left:.0f} s left" if p.seconds_left is not None else ""
            self.stdout.write(f"{p.done}/{p.total} done ({p.failed} failed, {p.duplicates} duplicates){left}")
            if bulk.status != BulkImport.Status.RUNNING:
                return
            time.sleep(2)
