"""The training recipe the site offers, in one place: the choices and initial values of the dashboard's
training form. (``settings.ML_DEFAULT_*`` fill in what a caller of ``runs.start_training_run`` leaves
out; ``ml.train.TrainConfig`` has the library's own.) Point these at the ml library's presets when it
publishes them."""

ARCH_CHOICES = [("resnet18", "ResNet-18"), ("resnet34", "ResNet-34"), ("resnet50", "ResNet-50")]
IMAGE_SIZE_CHOICES = [(128, "128 px"), (160, "160 px"), (224, "224 px"), (288, "288 px"), (384, "384 px"), (448, "448 px")]
FORM_ARCH = "resnet50"
FORM_IMAGE_SIZE = 224
FORM_EPOCHS = 20
MAX_EPOCHS = 500
