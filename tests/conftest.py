"""Fixtures shared by every site test.

* ``media_root`` (session, autouse): a temporary MEDIA_ROOT and ML_ROOT, so tests never touch var/.
* ``demo_data`` / ``demo_model`` (session): a synthetic fluke data set (``ml.synth``) and a tiny model
  trained on it once with ``ml.train`` (resnet18, 64 px, a few steps).
* ``active_model`` (function): that model registered as the active ModelVersion with a gallery of
  confirmed photos of known whales, embedded.
* ``celery_worker`` (session): a REAL worker subprocess (``celery -A whalesite worker --pool=solo``)
  on Redis db 15 and pytest-django's test database; ``.restart()`` / ``.kill()`` for crash tests.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
TEST_BROKER = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/15")  # settings.test uses the same default
VISIBILITY_TIMEOUT_S = 10
MODEL_IMAGE_SIZE = 64
DEMO_INDIVIDUALS = 6
DEMO_PHOTOS = 4  # per individual: 3 in the gallery, 1 held out as "a new photo of a known whale"


def wait_for(predicate, timeout=120.0, interval=0.25, message="condition"):
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {message}")
        time.sleep(interval)


@pytest.fixture(autouse=True)
def no_species_classifier(request, tmp_path):
    """Each site test starts with no species classifier (an empty ``SPECIES_CLASSIFIER_DIR`` of its own): one that
    a test trains (``seed_demo`` writes one) must not prefill every later upload's species. Tests that want one
    point the setting at their own folder."""
    if not request.config.pluginmanager.hasplugin("django"):
        yield
        return
    settings = request.getfixturevalue("settings")
    settings.SPECIES_CLASSIFIER_DIR = str(tmp_path / "no-species-classifier")
    yield


@pytest.fixture(scope="session", autouse=True)
def media_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    try:  # no-op without Django settings (``pytest tests/ml -p no:django``)
        from django.conf import settings
        from django.test import override_settings

        configured = settings.configured
    except ImportError:
        configured = False
    if not configured:
        yield root
        return
    media, ml_root = root / "media", root / "ml"
    media.mkdir()
    ml_root.mkdir()
    override = override_settings(MEDIA_ROOT=str(media), ML_ROOT=ml_root, ML_DEVICE="cpu")
    override.enable()
    yield media
    override.disable()


# --------------------------------------------------------------------------- model


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    """(folder, {label: [images]}, {image: Box}) of synthetic flukes."""
    pytest.importorskip("ml.synth", reason="ml.synth has not landed yet")
    from tests.factories import fluke_dataset, read_dataset

    out = fluke_dataset(tmp_path_factory.mktemp("synth"), DEMO_INDIVIDUALS + 1, DEMO_PHOTOS, seed=11)
    by_id, boxes = read_dataset(out)
    return out, by_id, boxes


@pytest.fixture(scope="session")
def demo_model(demo_data, media_root):
    """A tiny model folder (under ML_ROOT) trained on the gallery part of ``demo_data``."""
    from django.conf import settings

    from ml.train import TrainConfig, train
    from tests.factories import write_csv

    folder, by_id, boxes = demo_data
    known = list(by_id)[:DEMO_INDIVIDUALS]
    train_dir = Path(settings.ML_ROOT) / "demo-train"
    train_dir.mkdir(parents=True, exist_ok=True)
    rows = [(img, label) for label in known for img in by_id[label][:-1]]
    write_csv(train_dir / "train.csv", ["Image", "Id"], rows)
    write_csv(
        train_dir / "boxes.csv",
        ["Image", "x0", "y0", "x1", "y1"],
        [(img, b.x0, b.y0, b.x1, b.y1) for img, b in boxes.items() if any(img == r[0] for r in rows)],
    )
    out = Path(settings.ML_ROOT) / "models" / "demo"
    config = TrainConfig(
        csv=str(train_dir / "train.csv"),
        images_dir=str(folder / "images"),
        out_dir=str(out),
        boxes_csv=str(train_dir / "boxes.csv"),
        arch="resnet18",
        image_size=MODEL_IMAGE_SIZE,
        epochs=1,
        batch_size=16,
        num_workers=0,
        max_steps=4,
        device="cpu",
        train_localizer=False,
    )
    result = train(config)
    return result


@pytest.fixture(scope="session")
def demo_identifier(demo_model):
    from ml.identifier import Identifier

    return Identifier.load(demo_model.model_dir, device="cpu")


@dataclass
class Demo:
    version: object
    species: object
    individuals: dict  # label -> Individual
    gallery: dict  # label -> [Photo]
    held_out: dict  # label -> path of a photo not in the gallery
    new_whale: list  # paths of photos of a whale not in the catalogue
    users: dict = field(default_factory=dict)


def register_model(result, **extra):
    from django.conf import settings

    from identification.models import ModelVersion
    from tests.factories import SpeciesFactory

    extra.setdefault("species", SpeciesFactory())  # a humpback model unless told otherwise
    rel = Path(result.model_dir).resolve().relative_to(Path(settings.ML_ROOT).resolve())
    return ModelVersion.objects.create(
        name=f"demo-{time.monotonic_ns()}",
        artifact_dir=str(rel),
        metrics=result.metrics.to_dict(),
        history=result.history,
        new_threshold=result.new_threshold,
        **extra,
    )


@pytest.fixture
def active_model(demo_data, demo_model, demo_identifier, db):
    """The demo model active, with a gallery of the known whales' photos embedded (in this process)."""
    from django.core.files.base import ContentFile
    from django.utils import timezone

    from identification.models import Embedding, Individual, TrainingExample
    from ml.images import compute_hashes, load_image
    from submissions.models import Photo, Sighting
    from tests.factories import SpeciesFactory, UserFactory

    folder, by_id, boxes = demo_data
    species = SpeciesFactory()
    users = {role: UserFactory(email=f"{role}@example.org", role=role) for role in ("watcher", "moderator", "admin")}
    version = register_model(demo_model, is_active=True, gallery_ready=True, promoted_at=timezone.now())
    labels = list(by_id)
    individuals, gallery, held_out = {}, {}, {}
    for n, label in enumerate(labels[:DEMO_INDIVIDUALS]):
        ind = Individual.objects.create(catalogue_id=f"HW-{n + 1:04d}", species=species, nickname=f"Whale {n + 1}")
        individuals[label], gallery[label] = ind, []
        sighting = Sighting.objects.create(species=species, observed_at=timezone.now(), submitted_by=users["watcher"])
        for img in by_id[label][:-1]:
            data = (folder / "images" / img).read_bytes()
            h = compute_hashes(data)
            photo = Photo(
                sighting=sighting,
                sha256=h.sha256,
                phash=h.phash,
                original_filename=img,
                status=Photo.Status.CONFIRMED,
                individual=ind,
                species=species,
            )
            photo.image.save(img, ContentFile(data), save=False)
            if img in boxes:
                photo.set_box(boxes[img], Photo.BoxSource.GIVEN, 1.0, False)
            photo.save()
            TrainingExample.objects.create(photo=photo, individual=ind, status=TrainingExample.Status.USED)
            prepared = demo_identifier.prepare(load_image(data), box=photo.box)
            vec = demo_identifier.embed([prepared.crop])[0]
            Embedding.objects.create(photo=photo, model_version=version, vector=vec.astype("float32").tobytes())
            gallery[label].append(photo)
        held_out[label] = folder / "images" / by_id[label][-1]
    new_whale = [folder / "images" / img for img in by_id[labels[DEMO_INDIVIDUALS]]]
    return Demo(version, species, individuals, gallery, held_out, new_whale, users)


# --------------------------------------------------------------------------- worker


WORKER_QUEUES = ("pipeline", "training", "default", "imports")


class Worker:
    """A real ``celery worker`` subprocess on the test database and test broker."""

    def __init__(self, env: dict, log_path: Path):
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None
        # one hostname for every start, as in production (``-n training@%h``): a restarted worker knows the
        # runs its killed process left RUNNING as its own (``training.runs.recover_runs_of``)
        self.name = f"test-{os.getpid()}-{time.monotonic_ns()}@%h"

    def start(self, timeout=60.0) -> None:
        from whalesite.celery import app

        log = open(self.log_path, "ab")
        offset = log.tell()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "whalesite",
                "worker",
                "-Q",
                ",".join(WORKER_QUEUES),
                "-c",
                "1",
                "--pool=solo",
                "--without-gossip",
                "--without-mingle",
                "-l",
                "INFO",
                "-n",
                self.name,
            ],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

        def answered():
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited with {self.proc.returncode}; see {self.log_path}")
            # a solo worker busy with a redelivered task cannot answer ping; its "ready." line says it is up
            with open(self.log_path, "rb") as fh:
                fh.seek(offset)
                if b" ready." in fh.read():
                    return True
            return app.control.ping(timeout=0.5)

        wait_for(answered, timeout=timeout, interval=0.5, message="the Celery worker to answer ping")

    def wait_idle(self, timeout=60.0) -> bool:
        """Whether the worker went idle within ``timeout``: the broker holds no message for it and it runs and
        holds none, seen twice 0.2 s apart. False at once when it is not running (a test killed it) or the broker
        cannot be asked (a test took it away)."""
        import redis

        from whalesite.celery import app

        if self.proc is None or self.proc.poll() is not None:
            return False
        broker = redis.Redis.from_url(TEST_BROKER)

        def quiet() -> bool:
            keys = [k for q in WORKER_QUEUES for k in broker.scan_iter(f"{q}*") if broker.type(k) == b"list"]
            if any(broker.llen(k) for k in keys):
                return False
            inspect = app.control.inspect(timeout=1.0, limit=1)  # one worker: its answer ends the wait
            active = inspect.active()  # None: a solo worker busy with a task does not answer
            return bool(active) and not any(active.values()) and not any((inspect.reserved() or {}).values())

        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if quiet() and (time.sleep(0.2) or quiet()):
                    return True
                time.sleep(0.25)
        except Exception:  # the broker or its connection is down: nothing to wait for
            return False
        return False

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def log_tail(self, n=4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""


@pytest.fixture(scope="session")
def celery_worker(django_db_setup, django_db_blocker, media_root, tmp_path_factory):
    import redis
    from django.conf import settings
    from django.db import connection

    redis.Redis.from_url(TEST_BROKER).flushdb()
    db = connection.settings_dict
    env = dict(os.environ)
    mail_dir = tmp_path_factory.mktemp("worker-mail")
    env.update(
        # the worker's e-mail goes to files a test can read (``worker.mail_dir``), whichever test started it
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(mail_dir),
        DJANGO_SETTINGS_MODULE="whalesite.settings.test",
        DATABASE_URL=(
            f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
        ),
        CELERY_BROKER_URL=TEST_BROKER,
        CELERY_VISIBILITY_TIMEOUT=str(VISIBILITY_TIMEOUT_S),
        MEDIA_ROOT=str(settings.MEDIA_ROOT),
        ML_ROOT=str(settings.ML_ROOT),
        ML_DEVICE="cpu",
        ML_TRAIN_MAX_STEPS="3",
        OMP_NUM_THREADS="2",
        PYTHONPATH=str(REPO),
    )
    worker = Worker(env, tmp_path_factory.mktemp("worker") / "worker.log")
    worker.mail_dir = mail_dir
    worker.start()
    yield worker
    worker.stop()


def _transactional(request) -> bool:
    marker = request.node.get_closest_marker("django_db")
    wanted = {"transactional_db", "live_server"} & set(request.fixturenames)
    return bool(wanted) or bool(marker and marker.kwargs.get("transaction"))


@pytest.fixture(autouse=True)
def worker_idle_before_flush(request):
    """A transactional test that used the worker ends only once the worker is idle: the database flush (TRUNCATE)
    that meets a task it left (re-ranking after decisions, say) deadlocks, and PostgreSQL may fail the flush.
    The database fixture is requested here so that it is torn down, and flushed, after this waits."""
    if "celery_worker" not in request.fixturenames or not _transactional(request):
        yield
        return
    request.getfixturevalue("transactional_db")
    worker = request.getfixturevalue("celery_worker")
    yield
    worker.wait_idle()


# --------------------------------------------------------------------------- broker outages


def forget_unacked() -> None:
    """Drop the test broker's record of delivered, unacknowledged messages: a killed worker's message is
    then not given back after the fixture's 10 s visibility timeout, as it is not for an hour in production."""
    import redis

    redis.Redis.from_url(TEST_BROKER).delete("unacked", "unacked_index")


@pytest.fixture
def broker_proxy(monkeypatch):
    """This process's Celery app sends through a loopback TCP proxy in front of the test Redis;
    ``.stop()`` takes the broker away (connections refused), ``.start()`` brings it back on the same port.
    The worker subprocess keeps its own connection to Redis."""
    from urllib.parse import urlsplit, urlunsplit

    from tests.proxy import TcpProxy
    from whalesite.celery import app

    parts = urlsplit(TEST_BROKER)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 6379).start()
    original = app.conf.broker_url

    def use(url):
        monkeypatch.setenv("CELERY_BROKER_URL", url)  # Celery reads the variable before its own setting
        app.conf.broker_url = url
        app._pool = None
        app.amqp._producer_pool = None

    use(urlunsplit(parts._replace(netloc=f"127.0.0.1:{proxy.port}")))
    yield proxy
    proxy.stop()
    use(original)


# --------------------------------------------------------------------------- database failures


@pytest.fixture
def database_proxy(transactional_db):
    """This process's database connection goes through a loopback TCP proxy in front of the test
    PostgreSQL: ``.stop()`` drops every open connection mid-query and refuses new ones, ``.start()``
    listens on the same port again. The worker subprocess keeps its own connection to PostgreSQL."""
    from django.db import connection

    from tests.proxy import TcpProxy

    db = connection.settings_dict
    original = db["PORT"]
    proxy = TcpProxy(db["HOST"] or "127.0.0.1", int(original or 5432)).start()
    connection.close()
    db["PORT"] = str(proxy.port)
    yield proxy
    proxy.stop()
    connection.close()
    db["PORT"] = original


@contextmanager
def photo_inserts_fail(timeout_ms: int = 500):
    """A real database failure inside an upload: another session holds a SHARE lock on the photo table
    (SELECTs go on, INSERTs wait), and this session's ``lock_timeout`` turns the wait into an
    OperationalError once the upload's file is already in storage."""
    import psycopg
    from django.db import connection

    db = connection.settings_dict
    blocker = psycopg.connect(
        host=db["HOST"] or "127.0.0.1",
        port=db["PORT"] or 5432,
        user=db["USER"] or "postgres",
        dbname=db["NAME"],
        password=db["PASSWORD"] or None,
    )
    try:
        blocker.execute("LOCK TABLE submissions_photo IN SHARE MODE")
        with connection.cursor() as cursor:
            cursor.execute(f"SET lock_timeout = '{int(timeout_ms)}ms'")
        yield
    finally:
        blocker.rollback()
        blocker.close()
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")
