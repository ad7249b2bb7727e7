"""``python manage.py export_research {dwca,capture,sightings} --out FILE``: the research exports
of ``identification.research``, the same code the web page streams, written to a file. Run by an
operator, so coordinates are as recorded unless ``--decimals`` rounds them."""

from datetime import date

from django.core.management.base import BaseCommand, CommandError

from identification.models import Species
from identification.research import capture_history, darwin_core, sightings_csv
from identification.research.common import ExportOptions, write_to_file


class Command(BaseCommand):
    help = "Write a Darwin Core Archive, capture histories or the sightings CSV to a file."

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=["dwca", "capture", "sightings"])
        parser.add_argument("--out", required=True, help="File to write")
        parser.add_argument("--start", type=date.fromisoformat, help="Observed on or after (YYYY-MM-DD)")
        parser.add_argument("--end", type=date.fromisoformat, help="Observed on or before (YYYY-MM-DD)")
        parser.add_argument("--species", help="Species code, e.g. HW")
        parser.add_argument("--decimals", type=int, help="Round coordinates to this many decimals")
        parser.add_argument("--occasion", choices=capture_history.OCCASIONS, default="month")
        parser.add_argument("--format", choices=["inp", "csv"], default="inp", help="Capture history format")

    def handle(self, *args, kind, out, **o):
        species = None
        if o["species"]:
            species = Species.objects.filter(code__iexact=o["species"]).first()
            if species is None:
                raise CommandError(f"no species with code {o['species']}")
        options = ExportOptions(start=o["start"], end=o["end"], species=species, decimals=o["decimals"])
        if kind == "dwca":
            chunks = darwin_core.archive_stream(options)
        elif kind == "sightings":
            chunks = sightings_csv.csv_stream(options)
        else:
            try:
                options = capture_history.population(options)
            except capture_history.MixedSpecies as exc:
                raise CommandError(f"{exc} Use --species.") from exc
            stream = capture_history.csv_stream if o["format"] == "csv" else capture_history.mark_inp_stream
            chunks = stream(options, o["occasion"])
        size = write_to_file(chunks, out)
        self.stdout.write(self.style.SUCCESS(f"Wrote {out} ({size} bytes)."))
