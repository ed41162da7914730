"""The README's "use the parts in your own model.fit" example runs."""

import os
import re

from tests.test_case import TestCase

README = os.path.join(os.path.dirname(__file__), "..", "README.md")


def readme_example():
    with open(README) as f:
        text = f.read()
    block = re.search(
        r"<!-- readme-example:start -->\s*```python\n(.*?)```", text, re.S
    )
    return block.group(1)


class ReadmeExampleTest(TestCase):
    def test_example_trains_saves_and_reloads(self):
        code = readme_example()
        cwd = os.getcwd()
        os.chdir(self.get_temp_dir())
        try:
            namespace = {}
            exec(compile(code, "README.md", "exec"), namespace)
            self.assertTrue(os.path.exists("my_balpoe.keras"))
            keras = namespace["keras"]
            reloaded = keras.saving.load_model("my_balpoe.keras")
            expected = namespace["model"].predict(
                namespace["images"][:4], verbose=0)
            actual = reloaded.predict(namespace["images"][:4], verbose=0)
            self.assertAllClose(actual, expected, atol=1e-5)
            probs = namespace["probabilities"]
            self.assertAllClose(probs.sum(-1), [1.0] * 64, atol=1e-5)
            # The metrics compile() promises reach fit's history.
            self.assertEqual(
                set(namespace["history"].history),
                {"loss", "accuracy", "balanced_accuracy", "acc_many",
                 "acc_medium", "acc_few", "ece", "expert_0_loss",
                 "expert_1_loss", "expert_2_loss"})
        finally:
            os.chdir(cwd)
