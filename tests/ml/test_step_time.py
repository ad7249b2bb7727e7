"""``ml.step_time``: the retrain form's estimate rests on a real measurement of ``ml.train``'s step."""

from ml.step_time import measure_step_time


def test_measures_train_steps_of_the_chosen_architecture_and_size():
    step = measure_step_time("resnet18", 64, batch_size=4, device="cpu", steps=2, embedding_dim=32)
    assert (step.arch, step.image_size, step.batch_size, step.device, step.steps) == ("resnet18", 64, 4, "cpu", 2)
    assert 0 < step.seconds_per_step < 600
