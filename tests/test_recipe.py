import pytest

from tuning.recipe import TrainingRecipe, changes_from_defaults
from tuning.architecture import UNetArchitecture


@pytest.mark.parametrize("field, value", [("lr_schedule", "step"), ("ema_momentum", 1.0),
                                          ("tumor_weighting", "volume"), ("batch_size", 0)])
def test_a_recipe_refuses_values_training_cannot_use(field, value):
    with pytest.raises(ValueError, match=field):
        TrainingRecipe(**{field: value})


def test_changes_from_defaults_names_each_changed_field_of_either_part():
    architecture, recipe = UNetArchitecture(depth=3), TrainingRecipe(tumor_share=0.7, lr_schedule="cosine")
    assert changes_from_defaults(architecture, recipe) == {
        "depth": (3, 4), "tumor_share": (0.7, 0.5), "lr_schedule": ("cosine", "plateau")}
    assert changes_from_defaults(UNetArchitecture(), TrainingRecipe()) == {}
