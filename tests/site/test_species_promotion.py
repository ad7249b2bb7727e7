"""Issue 16: each species has its own active model. Promoting a humpback model embeds only the humpback
gallery and retires only the humpback's active model; the dolphins' model and gallery are left alone."""

import pytest

from identification.models import Embedding, ModelVersion
from identification.pipeline.reembed import reembed_gallery
from submissions.models import Photo
from tests.conftest import register_model
from tests.factories import IndividualFactory, PhotoFactory, SightingFactory, SpeciesFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db]


def test_promoting_one_species_model_leaves_the_other_species_model_and_gallery_alone(active_model, demo_model):
    dolphin = SpeciesFactory(code="TT", common_name="Bottlenose dolphin", profile="dolphin_fin")
    dolphin_version = register_model(demo_model, species=dolphin, is_active=True, gallery_ready=True)
    fin_whale = IndividualFactory(species=dolphin, catalogue_id="TT-0001")
    image = active_model.gallery[next(iter(active_model.gallery))][0].image  # any readable photo
    fin = PhotoFactory(
        sighting=SightingFactory(species=dolphin), individual=fin_whale, status=Photo.Status.CONFIRMED, image=image.name
    )
    old = active_model.version
    new = register_model(demo_model, species=active_model.species)

    assert reembed_gallery(new.pk, promote=True) == "promoted"

    assert set(ModelVersion.objects.active().values_list("pk", flat=True)) == {new.pk, dolphin_version.pk}
    assert (
        ModelVersion.objects.active_for(active_model.species).get() == new
        and not ModelVersion.objects.get(pk=old.pk).is_active
    )
    humpback_gallery = {p.pk for photos in active_model.gallery.values() for p in photos}
    assert set(Embedding.objects.filter(model_version=new).values_list("photo_id", flat=True)) == humpback_gallery
    assert not Embedding.objects.filter(photo=fin).exists()  # never embedded by the humpback's model
