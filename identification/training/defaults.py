"""The training recipe the site offers, in one place: the choices and initial values of the dashboard's
training form. (``settings.ML_DEFAULT_*`` fill in what a caller of ``runs.start_training_run`` leaves
out; both read ``ml.presets``, where the library states its choices and recipes once.)"""

from ml import presets

ARCH_CHOICES = [(arch, presets.ARCH_LABELS[arch]) for arch in presets.ARCHS]
IMAGE_SIZE_CHOICES = [(size, f"{size} px") for size in presets.IMAGE_SIZES]
FORM_ARCH = presets.DEFAULT.arch
FORM_IMAGE_SIZE = presets.DEFAULT.image_size
FORM_EPOCHS = presets.DEFAULT.epochs
MAX_EPOCHS = 500
